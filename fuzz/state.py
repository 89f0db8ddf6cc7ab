"""A gate state the engine reads, made of fixed values: what the signed-claims harness fuzzes.

The engine is pure and reads state only through ``gate.rules.StateView``, so
fuzzing that state means handing it arbitrary answers, including ones a real
store would only give after a hostile gate's report (a usage time in year
287396, a negative quota).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gate.rules import Usage


@dataclass(frozen=True)
class FixedState:
    """A ``StateView`` that gives the same answers for every ticket."""

    usage_of_ticket: Usage = Usage()
    revoked: bool = False
    quota: int | None = None
    trusted: bool = True
    online: bool = True

    def is_revoked(self, ticket_id: bytes) -> bool:
        return self.revoked

    def usage(self, ticket_id: bytes, zone: str, day: date) -> Usage:
        return self.usage_of_ticket

    def quota_remaining(self, day: date, minute: int) -> int | None:
        return self.quota

    def clock_trusted(self) -> bool:
        return self.trusted

    def hub_online(self) -> bool:
        return self.online
