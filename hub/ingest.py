"""What the hub derives from gate events, and how far it believes them.

A gate's event is a claim. The hub relays a used mark (which makes every
other gate refuse or count a ticket) only for a ticket it has verified
itself: an admission or exit carries the scanned ticket text, the hub checks
the issuer signature with its own issuer trust store (hub.toml ``trust``) and
the ticket's validity at the event time, and then bounds what the gate says
by the ticket's own claims (entries, zones, persons). Exits and rollbacks
refer to a ticket verified earlier (``TicketFacts`` kept by the store). An
event time far from hub time relays nothing: ``at`` = 2^53 ms once crashed
every gate rendering "already used at ...".

Pure functions and one small class, so the rules are tested without a
broker or a database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from protocol.claims import MAIN_ZONE, TicketClaims
from protocol.errors import TicketError
from protocol.gate_messages import EventKind, GateEvent
from protocol.hub_messages import UsedMark
from protocol.ticket import verify_ticket
from protocol.trust import TrustStore

log = logging.getLogger(__name__)

FUTURE_SKEW_MS = 5 * 60_000  # a gate clock this far ahead of hub time is still believed
VALIDITY_GRACE_S = 300  # ticket validity is checked at the event time, within this margin


@dataclass(frozen=True)
class TicketFacts:
    """What the hub learnt from a ticket it verified: the bounds for every mark of that ticket."""

    ticket_id: bytes
    expires: int
    persons: int
    entries: int  # the most entries one gate's row of one day may count; 0: no bound (unlimited or re-entry tickets)
    zones: tuple[str, ...]


@dataclass(frozen=True)
class Checked:
    """An event after the hub's checks: the mark to relay (or None) and why not, for the log."""

    event: GateEvent
    mark: UsedMark | None
    quota_persons: int | None
    refused: str | None = None


class EventChecker:
    """Checks events against hub time and the issuer trust store; ``trust`` None trusts ticket claims unverified."""

    def __init__(self, site: str, trust: TrustStore | None, max_age_ms: int) -> None:
        self.site = site
        self.trust = trust
        self.max_age_ms = max_age_ms

    def verify(self, event: GateEvent) -> TicketFacts | None:
        """The facts of the ticket an admission or exit carries, if it verifies and is the event's ticket."""
        text = event.data.ticket
        if text is None or self.trust is None or event.ticket_id is None:
            return None
        try:
            claims = verify_ticket(text, self.trust, event.at_ms // 1000).claims
        except TicketError as error:
            log.debug("gate %s event seq %d: ticket does not verify at the hub: %s", event.gate, event.seq, error)
            return None
        at_s = event.at_ms // 1000
        if claims.ticket_id != event.ticket_id or claims.site != self.site:
            log.debug("gate %s event seq %d names ticket %s but carries ticket %s of site %s", event.gate, event.seq, event.ticket_id.hex(), claims.ticket_id.hex(), claims.site)
            return None
        if not claims.not_before - VALIDITY_GRACE_S <= at_s <= claims.expires + VALIDITY_GRACE_S:
            log.debug("gate %s event seq %d: ticket %s is not valid at the event time", event.gate, event.seq, claims.ticket_id.hex())
            return None
        return TicketFacts(claims.ticket_id, claims.expires, claims.persons, _entry_bound(claims), claims.zones)

    def check(self, event: GateEvent, now_ms: int, facts: Callable[[bytes], TicketFacts | None]) -> Checked:
        """The mark and quota count this event may cause; ``facts`` looks up a verified ticket."""
        if not now_ms - self.max_age_ms <= event.at_ms <= now_ms + FUTURE_SKEW_MS:
            return Checked(event, None, None, f"event time {event.at_ms} is outside the window of hub time {now_ms}")
        mark = used_mark_for(event)
        quota = event.data.quota.persons if event.data.quota is not None else None
        if self.trust is None or (mark is None and quota is None):
            return Checked(event, mark, quota)
        known = facts(event.ticket_id) if event.ticket_id is not None else None
        if known is None:
            reason = "ticket not verified by the hub" if mark is not None else None
            return Checked(event, None, quota if quota is not None and quota <= 0 else None, reason)
        if quota is not None and quota > known.persons:
            return Checked(event, None, None, f"quota persons {quota} above the ticket's {known.persons}")
        if mark is not None:
            problem = _beyond_claims(mark, known)
            if problem:
                return Checked(event, None, quota, problem)
            mark = replace(mark, expires=known.expires)
        return Checked(event, mark, quota)


def _entry_bound(claims: TicketClaims) -> int:
    """The most entries a gate's row (one ticket, zone and day) can honestly count.

    A re-entry ticket goes in and out as often as it likes (only being inside
    twice is refused), and one gate's row may hold the exits of entries made
    at another gate, so neither is bounded there.
    """
    if claims.reentry:
        return 0
    if claims.entries and claims.entries_per_day:
        return min(claims.entries, claims.entries_per_day)
    return claims.entries or claims.entries_per_day or 0


def _beyond_claims(mark: UsedMark, facts: TicketFacts) -> str | None:
    if facts.entries and (mark.entries > facts.entries or mark.exits > facts.entries):
        return f"counters entries={mark.entries} exits={mark.exits} beyond the ticket's {facts.entries} entries"
    if facts.zones and mark.zone != MAIN_ZONE and mark.zone not in facts.zones:  # the main entrance admits any ticket of the site
        return f"zone {mark.zone!r} is not one of the ticket's"
    return None


def used_mark_for(event: GateEvent) -> UsedMark | None:
    """The mark an event that changed a ticket's counters relays, or None for other events.

    The gate puts its counters after the change in the event's ``usage``
    (admissions, exits a handheld re-arms at the scan, confirmed exit
    passages, rollbacks) and the ticket's expiry in ``expires``.
    """
    usage = event.data.usage
    if event.ticket_id is None or usage is None or event.kind not in (EventKind.ADMISSION, EventKind.EXIT, EventKind.PASSAGE, EventKind.ROLLBACK):
        return None
    return UsedMark(event.ticket_id, event.gate, usage.zone, usage.day, usage.entries, usage.exits, event.at_ms, event.data.expires)
