"""Admissions left open by a crash, exits of re-entry tickets, bounded state and the last guard, on real SQLite files."""

from __future__ import annotations

import logging
import struct
import os
import stat
from pathlib import Path

import pytest

from gate.cache.state import GateStore
from gate.clock import GateClock
from gate.decision import Reason
from gate.health import Alarm, GateHealth
from gate.hublink import HubLinkState
from gate.parts import GateParts, apply_hub_time, open_gate_parts
from gate.rules import Direction, GateRules
from gate.validator import Validator, input_hash
from protocol.ticket import read_ticket
from testkit.tickets import NOW, SITE

TURNSTILE = frozenset({"entry", "exit"})


def _gate(directory: Path, trust, passage_directions: frozenset[str] = TURNSTILE, wall: float = NOW) -> tuple[Validator, GateParts]:
    """A validator over parts the test also holds, as the composition root builds it; ``close`` the parts (or the validator, which owns them here)."""
    health = GateHealth()
    parts = open_gate_parts(directory, health, clock=GateClock(0, wall=lambda: wall), hub=HubLinkState(online=True))
    return Validator(GateRules(site=SITE, gate_id="east-1"), trust, parts.store, parts.revocations, parts.clock, parts.hub, health, passage_directions), parts


def _validator(directory: Path, trust, passage_directions: frozenset[str] = TURNSTILE, wall: float = NOW) -> Validator:
    return _gate(directory, trust, passage_directions, wall)[0]


def test_an_admission_never_pulsed_is_rolled_back_at_the_next_start(tmp_path, trust, mint):
    text = mint()
    first = _validator(tmp_path / "s", trust)
    assert first.scan(text).decision.granted  # committed; the process dies before the relay
    first.close()
    again, parts = _gate(tmp_path / "s", trust)
    assert again.recover_open_admissions(confirms_passage=False) == 1
    assert [e.kind for e in parts.store.pending_events()] == ["admission", "rollback"]
    assert again.scan(text).decision.granted  # the ticket was not burned
    again.close()


def test_a_pulsed_admission_stands_without_a_sensor_and_is_rolled_back_with_one(tmp_path, trust, mint):
    for confirms, kinds, second in ((False, ["admission", "passage"], Reason.ALREADY_USED), (True, ["admission", "rollback"], Reason.VALID)):
        text = mint()
        first = _validator(tmp_path / str(confirms), trust)
        admission = first.scan(text).admission
        assert first.begin_passage(admission)  # the relay is about to open; then the process is killed
        first.close()
        again, parts = _gate(tmp_path / str(confirms), trust)
        again.recover_open_admissions(confirms_passage=confirms)
        assert [e.kind for e in parts.store.pending_events()] == kinds
        assert parts.store.open_admissions() == []
        assert again.scan(text).decision.reason is second
        again.close()


def test_an_exit_scan_re_arms_a_reentry_ticket_only_when_the_exit_passage_is_confirmed(tmp_path, trust, mint):
    validator = _validator(tmp_path / "s", trust)
    text = mint(reentry=True)
    validator.passage(validator.scan(text).admission, 1)
    exit_scan = validator.scan(text, Direction.EXIT)
    assert exit_scan.decision.reason is Reason.EXIT and exit_scan.admission.direction is Direction.EXIT
    assert validator.scan(text).decision.reason is Reason.ALREADY_USED  # nobody walked out yet: a second person cannot enter
    validator.passage(exit_scan.admission, 0)
    assert validator.scan(text).decision.reason is Reason.ALREADY_USED
    exit_again = validator.scan(text, Direction.EXIT)
    validator.passage(exit_again.admission, 1)
    assert validator.scan(text).decision.granted
    validator.close()


def test_without_an_exit_relay_an_exit_scan_re_arms_nothing(tmp_path, trust, mint):
    validator = _validator(tmp_path / "s", trust, frozenset({"entry"}))
    text = mint(reentry=True)
    validator.passage(validator.scan(text).admission, 1)
    exit_scan = validator.scan(text, Direction.EXIT)
    assert exit_scan.admission is None and "not re-armed" in exit_scan.event.data["detail"]
    assert validator.scan(text).decision.reason is Reason.ALREADY_USED
    validator.close()


def test_a_handheld_validator_re_arms_at_the_exit_scan(tmp_path, trust, mint):
    validator, parts = _gate(tmp_path / "s", trust, frozenset())
    text = mint(reentry=True)
    assert validator.scan(text).admission is not None
    assert validator.scan(text, Direction.EXIT).mark.exits == 1
    assert validator.scan(text).decision.granted
    assert parts.store.open_admissions() == []
    validator.close()


def test_usage_of_long_expired_tickets_is_pruned_and_live_usage_kept(tmp_path, trust, mint):
    validator, parts = _gate(tmp_path / "s", trust)
    old, live = mint(not_before=NOW - 10 * 86_400, expires=NOW - 3 * 86_400), mint()
    with parts.store.transaction() as db:
        parts.store.add_usage(db, (read_ticket(old).claims.ticket_id, "main", "2026-11-10", "east-1"), 1, 0, NOW - 9 * 86_400, NOW - 3 * 86_400)
    validator.passage(validator.scan(live).admission, 1)
    parts.clock.sync_to_hub(NOW)
    assert validator.prune_expired_usage() == 1
    assert parts.store.counts()["usage_rows"] == 1
    assert validator.scan(live).decision.reason is Reason.ALREADY_USED
    validator.close()


def test_event_times_have_millisecond_resolution(tmp_path, trust, mint):
    validator = _validator(tmp_path / "s", trust, wall=NOW + 0.123)
    assert validator.scan(mint()).event.at_ms == NOW * 1000 + 123
    validator.close()


class _DamagedRecord:
    """The real revocation set, but one ticket's record unreadable the way a bug or a bad page
    makes it: ``struct.error``, which no layer expects (issue 10's cbor2 AssertionError was one)."""

    def __init__(self, revocations, broken: bytes) -> None:
        self._revocations, self._broken = revocations, broken

    def is_revoked(self, ticket_id: bytes) -> bool:
        if ticket_id == self._broken:
            raise struct.error("unpack requires a buffer of 16 bytes")
        return self._revocations.is_revoked(ticket_id)

    def close(self) -> None:
        self._revocations.close()


def test_an_unexpected_exception_while_deciding_is_an_internal_error_deny_counted_and_logged_with_a_hash_only(tmp_path, trust, mint, caplog):
    health = GateHealth()
    parts = open_gate_parts(tmp_path / "s", health, clock=GateClock(0, wall=lambda: NOW), hub=HubLinkState(online=True))
    text, good = mint(), mint()
    damaged = _DamagedRecord(parts.revocations, read_ticket(text).claims.ticket_id)
    validator = Validator(GateRules(site=SITE, gate_id="east-1"), trust, parts.store, damaged, parts.clock, parts.hub, health, TURNSTILE)
    with caplog.at_level(logging.ERROR):
        result = validator.scan(text)
    assert not result.decision.granted and result.decision.reason is Reason.INTERNAL_ERROR
    assert result.event.data["reason"] == "internal_error" and result.admission is None
    assert validator.health.snapshot().internal_errors == 1 and validator.health.has_alarm(Alarm.INTERNAL_ERROR)
    errors = [r for r in caplog.records if r.name == "gate.validator"]
    assert len(errors) == 1 and text not in caplog.text and input_hash(text) in errors[0].getMessage()
    assert validator.scan(good).decision.granted  # the gate goes on
    validator.close()


def test_a_revocation_store_that_fails_is_a_storage_error_deny_with_an_alarm(tmp_path, trust, mint):
    validator, parts = _gate(tmp_path / "s", trust)
    parts.revocations.close()  # the real revocation set used after close: every lookup raises StoreClosed
    result = validator.scan(mint())
    assert result.decision.reason is Reason.STORAGE_ERROR and result.event.data["reason"] == "storage_error"
    assert validator.health.has_alarm(Alarm.STORAGE) and validator.health.snapshot().storage_errors == 1
    parts.store.close()


def test_state_files_are_private_and_a_symlink_at_the_state_file_is_refused(tmp_path, trust):
    validator = _validator(tmp_path / "s", trust)
    validator.close()
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    for path in [tmp_path / "s" / "state.sqlite3", *(tmp_path / "s" / "revocations").iterdir()]:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600, path
    (tmp_path / "elsewhere").write_text("not yours")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "state.sqlite3").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception) as error:
        GateStore.open(tmp_path / "t")
    assert "state.sqlite3" in str(error.value)
    assert (tmp_path / "elsewhere").read_text() == "not yours"


def test_usage_of_tickets_expired_before_the_lower_bound_is_not_loaded_until_hub_time_says_it_matters(tmp_path, trust, mint):
    text = mint()
    first, parts = _gate(tmp_path / "s", trust)
    first.passage(first.scan(text).admission, 1)
    parts.store.set_meta("clock_high_water", NOW + 5 * 86_400)  # a clock that ran days ahead left its mark
    first.close()
    again, parts = _gate(tmp_path / "s", trust)
    assert not parts.store.has_usage(read_ticket(text).claims.ticket_id)  # skipped at open: looked long expired
    apply_hub_time(parts.clock, parts.store, NOW)  # hub time: the ticket is valid again, and so is its usage
    assert again.scan(text).decision.reason is Reason.ALREADY_USED
    again.close()
