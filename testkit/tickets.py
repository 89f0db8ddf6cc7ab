"""The fixed test site and ticket claims: what tests, benchmarks and fuzz harnesses sign."""

from __future__ import annotations

import dataclasses
import time

from nacl.signing import SigningKey

from protocol.claims import TicketClaims
from protocol.ticket import issue_ticket, new_ticket_id

SITE = "potala"
NOW = 1_795_000_000  # 2026-11-18T11:06:40Z, a fixed instant so tests never depend on the wall clock
DAY = 86_400


def make_claims(**overrides: object) -> TicketClaims:
    """Claims of a one-day ticket valid at ``NOW`` at ``SITE``; ``overrides`` replace fields."""
    base = TicketClaims(ticket_id=new_ticket_id(), site=SITE, not_before=NOW - 3600, expires=NOW + DAY, issued_at=NOW - 7200)
    return dataclasses.replace(base, **overrides)


def live_ticket(key: SigningKey, **claims: object) -> str:
    """A ticket valid now by the wall clock (a live ``lungta gate run`` reads the real time)."""
    now = int(time.time())
    return issue_ticket(make_claims(not_before=now - 60, expires=now + 3600, **claims), key)
