"""Decisions recorded durably on real SQLite files: what a gate remembers across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cache.records import UsageCount
from gate.cache.state import GateStore
from gate.clock import GateClock
from gate.decision import Reason
from gate.hublink import HubLinkState
from gate.parts import apply_hub_time
from gate.rules import Direction, GateRules
from gate.validator import Validator
from protocol.ticket import read_ticket
from testkit.tickets import NOW, SITE


class SetRevocations:
    def __init__(self) -> None:
        self.ids: set[bytes] = set()

    def is_revoked(self, ticket_id: bytes) -> bool:
        return ticket_id in self.ids


def open_validator(directory: Path, trust, gate_id: str = "east-1") -> Validator:
    store = GateStore.open(directory)
    return Validator(GateRules(site=SITE, gate_id=gate_id), trust, store, SetRevocations(), GateClock(0, wall=lambda: NOW), HubLinkState(online=True))


@pytest.fixture
def store(tmp_path):
    opened = GateStore.open(tmp_path / "state")
    yield opened
    opened.close()


@pytest.fixture
def revocations() -> SetRevocations:
    return SetRevocations()


@pytest.fixture
def validator(store, revocations, trust) -> Validator:
    return Validator(GateRules(site=SITE, gate_id="east-1"), trust, store, revocations, GateClock(0, wall=lambda: NOW), HubLinkState(online=True))


def test_single_entry_ticket_is_granted_then_refused_as_already_used(validator, mint):
    text = mint()
    first = validator.scan(text)
    second = validator.scan(text)
    assert first.decision.granted and first.admission is not None
    assert second.decision.reason is Reason.ALREADY_USED and "east-1" in second.decision.detail


def test_admission_survives_a_restart(tmp_path, trust, mint):
    text = mint()
    first = open_validator(tmp_path / "state", trust)
    assert first.scan(text).decision.granted
    first.close()
    again = open_validator(tmp_path / "state", trust)
    assert again.scan(text).decision.reason is Reason.ALREADY_USED


def test_nobody_passing_rolls_the_admission_back_and_keeps_both_events(validator, mint, store):
    text = mint()
    result = validator.scan(text)
    validator.passage(result.admission, passed=0)
    assert validator.scan(text).decision.granted
    kinds = [event.kind for event in store.pending_events()]
    assert kinds == ["admission", "rollback", "admission"]


def test_a_passage_keeps_the_admission(validator, mint, store):
    text = mint(persons=3)
    result = validator.scan(text)
    validator.passage(result.admission, passed=3)
    assert validator.scan(text).decision.reason is Reason.ALREADY_USED
    assert [e.kind for e in store.pending_events()][-2] == "passage"


def test_every_decision_is_an_event_with_gap_free_sequence_numbers(validator, mint, store):
    for text in (mint(), "LT1:garbage", mint(site="elsewhere")):
        validator.scan(text)
    events = store.pending_events()
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.data["reason"] for e in events] == ["valid", "malformed", "wrong_site"]
    assert len({e.event_id for e in events}) == 3


def test_acknowledged_events_are_pruned_and_sequence_numbers_never_repeat(validator, mint, store):
    for _ in range(3):
        validator.scan(mint())
    assert store.acknowledge(2) == 2
    validator.scan(mint())
    assert [e.seq for e in store.pending_events()] == [3, 4]


def test_quota_lease_is_consumed_and_returned_on_rollback(validator, mint, store):
    day = "2026-11-18"
    store.set_quota_lease(day, 0, 1440, granted=4, lease_id=1, expires_ms=(NOW + 3600) * 1000)
    group = validator.scan(mint(persons=3))
    assert group.decision.granted
    assert validator.scan(mint(persons=2)).decision.reason is Reason.QUOTA_EXHAUSTED
    validator.passage(group.admission, passed=0)
    assert validator.scan(mint(persons=2)).decision.granted


def test_an_older_lease_never_replaces_a_newer_one(store):
    assert store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=2, expires_ms=(NOW + 3600) * 1000)
    assert not store.set_quota_lease("2026-11-18", 0, 1440, granted=50, lease_id=1, expires_ms=(NOW + 3600) * 1000)
    assert store.quota_leases()[0].granted == 10


def test_an_expired_lease_admits_nobody_until_the_hub_renews_it(validator, mint, store):
    store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=1, expires_ms=NOW * 1000)
    assert validator.scan(mint()).decision.reason is Reason.QUOTA_EXHAUSTED
    store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=2, expires_ms=(NOW + 60) * 1000)
    assert validator.scan(mint()).decision.granted


def test_admission_and_rollback_events_carry_what_the_hub_relays(validator, mint, store):
    store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=1, expires_ms=(NOW + 3600) * 1000)
    admitted = validator.scan(mint(persons=2))
    validator.passage(admitted.admission, passed=0)
    admission, rollback = store.pending_events()
    assert admission.data["usage"] == {"zone": "main", "day": "2026-11-18", "entries": 1, "exits": 0}
    assert admission.data["quota"] == {"day": "2026-11-18", "slot_start": 0, "persons": 2}
    assert rollback.data["usage"]["entries"] == 0 and rollback.data["quota"]["persons"] == -2
    assert admission.data["expires"] == rollback.data["expires"] > NOW


def test_admission_at_another_gate_learned_from_the_hub_makes_the_ticket_used(validator, mint, store):
    text = mint()
    ticket_id = read_ticket(text).claims.ticket_id
    store.apply_usage_mark(UsageCount(ticket_id, "main", "2026-11-18", "west-2", 1, 0, NOW - 60))
    decision = validator.scan(text).decision
    assert decision.reason is Reason.ALREADY_USED and "west-2" in decision.detail


def test_exit_rearms_a_reentry_ticket(validator, mint):
    text = mint(reentry=True)
    assert validator.scan(text).decision.granted
    assert validator.scan(text).decision.reason is Reason.ALREADY_USED
    assert validator.scan(text, Direction.EXIT).decision.reason is Reason.EXIT
    assert validator.scan(text).decision.granted


def test_revoked_ticket_is_refused(validator, mint, revocations):
    text = mint()
    revocations.ids.add(read_ticket(text).claims.ticket_id)
    assert validator.scan(text).decision.reason is Reason.REVOKED


def test_an_expired_lease_stays_expired_when_the_wall_clock_is_set_back(tmp_path, trust, mint):
    wall = [NOW + 20]
    store = GateStore.open(tmp_path / "s")
    validator = Validator(GateRules(site=SITE, gate_id="east-1"), trust, store, SetRevocations(), GateClock(0, wall=lambda: wall[0]), HubLinkState())
    store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=1, expires_ms=(NOW + 10) * 1000)
    assert validator.scan(mint()).decision.reason is Reason.QUOTA_EXHAUSTED
    wall[0] = NOW + 1  # someone sets the clock back to revive the lease
    assert validator.scan(mint()).decision.reason is Reason.QUOTA_EXHAUSTED
    validator.close()


def test_hub_time_brings_a_lease_clock_that_ran_ahead_back_so_live_leases_admit(tmp_path, trust, mint):
    wall = [NOW + 3600]  # the wall clock ran an hour ahead: every lease looked expired
    store, clock = GateStore.open(tmp_path / "s"), GateClock(0, wall=lambda: wall[0])
    validator = Validator(GateRules(site=SITE, gate_id="east-1"), trust, store, SetRevocations(), clock, HubLinkState(online=True))
    store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=1, expires_ms=(NOW + 600) * 1000)
    assert validator.scan(mint()).decision.reason is Reason.QUOTA_EXHAUSTED
    wall[0] = NOW  # the clock is put right, and hub time confirms it
    apply_hub_time(clock, store, NOW)
    assert validator.scan(mint()).decision.granted
    assert clock.read().lease_now < NOW + 600
    validator.close()


def test_the_places_of_group_members_who_did_not_pass_go_back_to_the_quota(validator, mint, store):
    store.set_quota_lease("2026-11-18", 0, 1440, granted=5, lease_id=1, expires_ms=(NOW + 3600) * 1000)
    group = validator.scan(mint(persons=4))
    validator.passage(group.admission, passed=3)
    assert store.quota_leases()[0].used == 3
    assert store.pending_events()[-1].data["quota"] == {"day": "2026-11-18", "slot_start": 0, "persons": -1}
    assert validator.scan(mint(persons=2)).decision.granted


def test_every_recorded_event_is_announced_once_it_is_committed_and_nothing_else_is(tmp_path, trust, mint):
    """What wakes the hub upload: each announcement finds the event already in the file, seen from another connection."""
    store = GateStore.open(tmp_path / "s")
    validator = Validator(GateRules(site=SITE, gate_id="east-1"), trust, store, SetRevocations(), GateClock(0, wall=lambda: NOW), HubLinkState(online=True))
    seen: list[int] = []

    def committed_events() -> None:
        with GateStore.open_read_only(tmp_path / "s") as reader:
            seen.append(reader.backlog())

    store.add_recorded_listener(committed_events)
    result = validator.scan(mint())  # an admission
    validator.passage(result.admission, 0)  # nobody passed: a rollback event
    validator.scan("LT1:NOT A TICKET")  # a denial, recorded without an fsync of its own
    store.set_quota_lease("2026-11-18", 0, 1440, granted=10, lease_id=1, expires_ms=(NOW + 60) * 1000)  # no event: no announcement
    with pytest.raises(RuntimeError), store.transaction() as db:
        store.append_event(db, "deny", NOW * 1000, None, {})
        raise RuntimeError("rolled back")
    assert seen == [1, 2, 3]
    store.close()
