"""How far the hub believes a gate's event (hub/ingest.py): the rules of docs/hub-protocol.md section 5.1.

Pure: real signed tickets and the real checker, no broker and no database; the
live process is driven in tests/hub/test_hostile_gates.py.
"""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from hub.ingest import FUTURE_SKEW_MS, Checked, EventChecker, TicketFacts
from protocol.claims import MAIN_ZONE
from protocol.gate_messages import EventData, EventKind, GateEvent, QuotaCount, UsageCounters
from protocol.ticket import issue_ticket, read_ticket
from protocol.trust import TrustStore
from testkit.tickets import DAY, NOW, SITE, make_claims

NOW_MS = NOW * 1000
RETENTION_MS = 3 * DAY * 1000


@pytest.fixture
def checker(trust: TrustStore) -> EventChecker:
    return EventChecker(SITE, trust, RETENTION_MS)


def event(text: str | None, kind: EventKind = EventKind.ADMISSION, zone: str = MAIN_ZONE, entries: int = 1, exits: int = 0, at_ms: int = NOW_MS,
          quota: int | None = None, ticket_id: bytes | None = None) -> GateEvent:
    """An event as a gate reports it: its counters after the event and, for admissions and exits, the scanned text."""
    ticket_id = ticket_id or (read_ticket(text).claims.ticket_id if text else os.urandom(12))
    data = EventData(usage=UsageCounters(zone, "2026-11-18", entries, exits), expires=NOW + DAY, persons=1,
                     quota=None if quota is None else QuotaCount("2026-11-18", 600, quota), ticket=text if kind in (EventKind.ADMISSION, EventKind.EXIT) else None)
    return GateEvent(os.urandom(16), "g1", b"i" * 16, 1, kind, at_ms, ticket_id, data)


def check(checker: EventChecker, gate_event: GateEvent, known: dict[bytes, TicketFacts] | None = None) -> Checked:
    """The checker as the hub's worker runs it: facts of the event's own ticket first, then those remembered."""
    facts = dict(known or {})
    verified = checker.verify(gate_event)
    if verified is not None:
        facts[verified.ticket_id] = verified
    return checker.check(gate_event, NOW_MS, facts.get)


def test_a_zoned_ticket_admitted_at_the_main_entrance_is_relayed(checker, mint):
    """The main entrance admits any ticket of the site (docs/protocol.md section 6): its mark must reach the other gates,
    or a copy of the ticket passes at the next main gate."""
    checked = check(checker, event(mint(zones=("north",)), zone=MAIN_ZONE))
    assert checked.refused is None and checked.mark is not None and checked.mark.zone == MAIN_ZONE


def test_a_zone_the_ticket_does_not_name_relays_nothing(checker, mint):
    text = mint(zones=("north",))
    assert check(checker, event(text, zone="north")).mark is not None
    refused = check(checker, event(text, zone="south"))
    assert refused.mark is None and "zone 'south'" in refused.refused


def test_counters_beyond_the_tickets_entries_relay_nothing(checker, mint):
    assert check(checker, event(mint(entries=3), entries=3)).mark is not None
    refused = check(checker, event(mint(entries=3), entries=4))
    assert refused.mark is None and "beyond the ticket's 3 entries" in refused.refused


def test_a_ticket_of_an_untrusted_issuer_or_another_id_relays_nothing(checker, mint):
    stranger = issue_ticket(make_claims(), SigningKey.generate())
    assert check(checker, event(stranger)).refused == "ticket not verified by the hub"
    assert check(checker, event(mint(), ticket_id=os.urandom(12))).refused == "ticket not verified by the hub"
    assert check(checker, event(None)).refused == "ticket not verified by the hub"


def test_a_ticket_of_another_site_or_not_valid_at_the_event_time_relays_nothing(checker, mint):
    assert check(checker, event(mint(site="elsewhere"))).mark is None
    assert check(checker, event(mint(not_before=NOW + 3600, expires=NOW + DAY))).mark is None
    assert check(checker, event(mint(not_before=NOW - DAY, expires=NOW - 3600))).mark is None


@pytest.mark.parametrize("at_ms", [NOW_MS + FUTURE_SKEW_MS + 1, NOW_MS - RETENTION_MS - 1, 2**53])
def test_an_event_time_outside_the_window_of_hub_time_relays_nothing(checker, mint, at_ms):
    checked = check(checker, event(mint(), at_ms=at_ms))
    assert checked.mark is None and checked.quota_persons is None and "outside the window" in checked.refused


def test_exits_and_rollbacks_are_relayed_only_for_a_ticket_verified_before(checker, mint):
    text = mint(reentry=True, entries=0)
    admitted = check(checker, event(text))
    facts = {admitted.event.ticket_id: checker.verify(admitted.event)}
    rollback = event(None, EventKind.ROLLBACK, entries=0, ticket_id=admitted.event.ticket_id)
    assert check(checker, rollback, facts).mark is not None
    assert check(checker, rollback).mark is None, "a rollback of a ticket the hub never verified relays nothing"


def test_quota_persons_are_bounded_by_the_tickets_persons(checker, mint):
    text = mint(persons=4)
    assert check(checker, event(text, quota=4)).quota_persons == 4
    refused = check(checker, event(text, quota=5))
    assert refused.quota_persons is None and refused.mark is None and "above the ticket's 4" in refused.refused
    assert check(checker, event(None, EventKind.ROLLBACK, quota=-4)).quota_persons == -4, "giving places back needs no verified ticket"
    assert check(checker, event(None, quota=3)).quota_persons is None, "taking places does"
