"""What the engine knows of the gate it decides for, and what it reads of local state.

``GateRules`` is fixed configuration; ``StateView`` is the read side of the
durable state (revocations, entries used, quota lease, clock), so the engine
stays pure and a test can hand it a dictionary-backed view.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Protocol
from zoneinfo import ZoneInfo

from protocol.bounds import setting

from .realname.policy import RealNamePolicy


class Direction(str, enum.Enum):
    ENTRY = "entry"
    EXIT = "exit"
    BOTH = "both"


class ClockPolicy(str, enum.Enum):
    """What a gate does while it cannot trust its clock."""

    DENY = "deny"
    ADMIT_FLAGGED = "admit_flagged"


class OfflinePolicy(str, enum.Enum):
    """What a gate cut off from the hub does with single-entry tickets.

    While offline, an admission at another gate is not known here, so a
    single-entry ticket could pass twice; the site chooses the risk.
    """

    ADMIT_FLAGGED = "admit_flagged"
    DENY = "deny"


@dataclass(frozen=True)
class GateRules:
    site: str
    gate_id: str = "gate-1"
    direction: Direction = Direction.ENTRY
    zone: str | None = None
    timezone: ZoneInfo = ZoneInfo("Asia/Shanghai")
    slot_grace_before_minutes: int = setting(15, low=0, high=720)
    slot_grace_after_minutes: int = setting(30, low=0, high=720)
    clock_policy: ClockPolicy = ClockPolicy.DENY
    offline_policy: OfflinePolicy = OfflinePolicy.ADMIT_FLAGGED
    realname: RealNamePolicy = RealNamePolicy()


@dataclass(frozen=True)
class Usage:
    """Entries and exits of one ticket in one zone, summed over all gates of the site."""

    entries: int = 0
    exits: int = 0
    today: int = 0
    last_gate: str | None = None
    last_at: int | None = None

    def consumed(self, reentry: bool) -> int:
        """Entries that count against the ticket: for a re-entry ticket an exit gives one back."""
        return self.entries - self.exits if reentry else self.entries


class StateView(Protocol):
    """The read side of gate state the engine consults. Implementations must not block."""

    def is_revoked(self, ticket_id: bytes) -> bool: ...

    def usage(self, ticket_id: bytes, zone: str, day: date) -> Usage: ...

    def quota_remaining(self, day: date, minute: int) -> int | None:
        """Persons this gate may still admit in the slot containing ``minute``; None = no quota."""
        ...

    def clock_trusted(self) -> bool: ...

    def hub_online(self) -> bool: ...
