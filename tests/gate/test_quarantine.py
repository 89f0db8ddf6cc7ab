"""A damaged state on a live ``lungta gate run``: moved aside intact, its unsent events salvaged,
a new incarnation started, one clear log line, no traceback, and the gate decides."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from gate.cache.quarantine import QUARANTINE, salvage_outbox
from gate.cache.schema import CorruptState
from gate.cache.state import GateStore
from protocol.gate_messages import EventKind
from protocol.keys import write_key_pair
from testkit.live_gate import GateProcess, write_gate_config
from testkit.ptys import RawPty
from testkit.tickets import live_ticket


@pytest.fixture
def scanner():
    port = RawPty()
    yield port
    port.close()


def _state_with_events(tmp_path: Path, issuer_key, scanner: RawPty, trust_file: Path) -> tuple[Path, bytes, list[bytes]]:
    """A state made by the real gate: three decisions in its outbox (never sent: no hub)."""
    state = tmp_path / "state"
    gate = GateProcess(write_gate_config(tmp_path, trust_file, scanner.port, state))
    gate.wait_ready(scanner.port)
    for count in range(1, 4):
        scanner.scan(live_ticket(issuer_key))
        gate.wait_line("visitor GRANT", count=count)
    assert gate.stop() == 0
    with GateStore.open(state) as store:
        return state, store.incarnation, [event.event_id for event in store.pending_events()]


def _garble_last_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-4096:] = os.urandom(4096)
    path.write_bytes(bytes(data))


def _garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:100] = os.urandom(100)
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2 + 7)


def _garble_revocations(path: Path) -> None:
    log = next((path.parent / "revocations").glob("delta.*.log"))
    log.write_bytes(b"garbage!" + log.read_bytes()[8:])


@pytest.mark.parametrize("damage", [_garble_header, _truncate, _garble_last_page, _garble_revocations])
def test_a_damaged_state_is_quarantined_and_the_gate_starts_a_new_incarnation(tmp_path, issuer_key, scanner, damage):
    trust_file = write_key_pair(issuer_key, tmp_path / "keys", "sales")[1]
    state, incarnation, event_ids = _state_with_events(tmp_path, issuer_key, scanner, trust_file)
    damage(state / GateStore.FILENAME)
    gate = GateProcess(write_gate_config(tmp_path, trust_file, scanner.port, state))
    gate.wait_ready(scanner.port)
    line = gate.wait_line("gate state damaged")
    scanner.scan(live_ticket(issuer_key))
    gate.wait_line("visitor GRANT")
    assert gate.stop() == 0
    assert "Traceback" not in gate.log and gate.log.count("gate state damaged") == 1
    quarantined = list((state / QUARANTINE).iterdir())
    assert len(quarantined) == 1 and (quarantined[0] / GateStore.FILENAME).exists()
    assert str(quarantined[0]) in line
    with GateStore.open(state) as store:
        assert store.incarnation != incarnation
        events = store.pending_events()
    salvaged = [event for event in events if "salvaged_seq" in event.data]
    assert {event.event_id for event in salvaged} <= set(event_ids)
    assert f"{len(salvaged)} unsent event(s) salvaged" in line
    if damage in (_garble_revocations, _garble_last_page):
        assert len(salvaged) == len(event_ids) == 6  # the outbox itself was readable: 3 admissions, 3 passages
    assert [event.kind for event in events[-2:]] == ["admission", "passage"] and events[-1].seq == len(events)


def test_a_locked_state_is_not_quarantined(tmp_path, issuer_key, scanner):
    trust_file = write_key_pair(issuer_key, tmp_path / "keys", "sales")[1]
    state = tmp_path / "state"
    first = GateProcess(write_gate_config(tmp_path, trust_file, scanner.port, state))
    first.wait_ready(scanner.port)
    second = GateProcess(write_gate_config(tmp_path, trust_file, scanner.port, state))
    assert second.child.wait(30) != 0
    first.stop()
    assert not (state / QUARANTINE).exists()
    assert "Traceback" not in second.log


def test_a_salvaged_event_of_a_kind_no_gate_records_is_counted_unreadable_and_the_rest_copied(tmp_path):
    """An unknown kind copied along would stop the upload of every event after it."""
    with GateStore.open(tmp_path / "old") as old:
        for _ in range(3):
            old.record_event(EventKind.DENY, 1_000, None, {"reason": "bad_signature"})
    with sqlite3.connect(tmp_path / "old" / GateStore.FILENAME) as db:
        db.execute("UPDATE outbox SET kind = 'teleport' WHERE seq = 2")
    with GateStore.open(tmp_path / "new") as new:
        assert salvage_outbox(tmp_path / "old" / GateStore.FILENAME, new) == (2, 1)
        assert [(event.kind, event.data["salvaged_seq"]) for event in new.pending_events()] == [(EventKind.DENY, 1), (EventKind.DENY, 3)]


def test_a_count_in_the_state_that_is_not_a_number_is_named_as_damage(tmp_path):
    with GateStore.open(tmp_path / "s") as store:
        store.set_meta("bdseq", "seven")
        with pytest.raises(CorruptState, match="meta bdseq is 'seven', not a count"):
            store.get_count("bdseq")
