"""The SQLite hub store: idempotent events, the contiguous ack point, outbox and snapshots."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from hub.ingest import used_mark_for
from hub.sqlite_store import SqliteHubStore
from protocol.hub_messages import Command, RevocationEntry, UsedMark
from protocol.gate_messages import EventKind, GateEvent, decode_event_data
from protocol.messages import MalformedMessage
from testkit.tickets import NOW

OLD, NEW = b"o" * 16, b"n" * 16  # two incarnations of one gate's state


@pytest.fixture
def store(tmp_path):
    opened = SqliteHubStore(tmp_path / "hub.db")
    yield opened
    opened.close()


def events(gate: str, seqs, kind: str = "admission", incarnation: bytes = OLD) -> list[GateEvent]:
    return [GateEvent(f"{gate}:{seq}".encode().ljust(16, b"."), gate, incarnation, seq, EventKind(kind), NOW * 1000, b"t" * 12) for seq in seqs]


def test_events_are_stored_once_and_the_ack_point_is_the_contiguous_prefix(store):
    with store.transaction():
        first = store.store_events(events("g1", [1, 2, 4, 5]) + events("g2", [1]), 0)
    assert first.contiguous == {("g1", OLD): 2, ("g2", OLD): 1} and first.duplicates == 0
    with store.transaction():
        again = store.store_events(events("g1", [2, 3]), 0)
    assert [e.seq for e in again.new_events] == [3] and again.duplicates == 1
    assert again.contiguous == {("g1", OLD): 5}
    assert store.event_count() == 6


def test_each_incarnation_has_its_own_sequence_and_a_renumbered_event_fills_its_new_seq(store):
    with store.transaction():
        store.store_events(events("g1", [1, 2, 3]), 0)
    old_unsent = [GateEvent(b"x" * 16, "g1", OLD, 4, EventKind.DENY, NOW * 1000)]
    with store.transaction():
        store.store_events(old_unsent, 0)
    renumbered = [GateEvent(b"x" * 16, "g1", NEW, 1, EventKind.DENY, NOW * 1000)] + events("g1", [2], incarnation=NEW)
    with store.transaction():
        stored = store.store_events(renumbered, 0)
    assert stored.contiguous == {("g1", NEW): 2}, "the event already stored under the old incarnation still fills seq 1 of the new one"
    assert [event.seq for event in stored.new_events] == [], "both event ids were stored before: nothing new to relay"
    assert store.contiguous_seq("g1", OLD) == 4 and store.max_seq("g1", OLD) == 4 and store.max_seq("g1", NEW) == 2


def test_an_event_decoded_from_the_wire_keeps_only_checked_fields():
    data = decode_event_data({"usage": {"zone": "main", "day": "2026-11-18", "entries": 1, "exits": 0}, "reason": "valid", "nested": {"a": [1]}, "big": 2**60})
    assert data.usage.entries == 1 and dict(data.extra) == {"reason": "valid"}
    with pytest.raises(MalformedMessage):
        decode_event_data({"usage": {"zone": "main", "day": "2026-11-18", "entries": 2**40, "exits": 0}})


def test_the_ack_point_survives_reopening_with_a_gap_still_open(tmp_path):
    store = SqliteHubStore(tmp_path / "hub.db")
    with store.transaction():
        store.store_events(events("g1", [1, 3]), 0)
    store.close()
    reopened = SqliteHubStore(tmp_path / "hub.db")
    assert reopened.contiguous_seq("g1", OLD) == 1
    with reopened.transaction():
        assert reopened.store_events(events("g1", [2]), 0).contiguous == {("g1", OLD): 3}
    reopened.close()


def test_a_rolled_back_batch_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.store_events(events("g1", [1, 2]), 0)
            raise RuntimeError("crash before commit")
    assert store.event_count() == 0 and store.contiguous_seq("g1", OLD) == 0
    with store.transaction():
        assert store.store_events(events("g1", [1, 2]), 0).contiguous == {("g1", OLD): 2}


def test_outbox_rows_get_consecutive_seqs_per_stream_and_stay_until_published(store):
    rows = store.add_revocations([RevocationEntry(bytes([i]) * 12, NOW + 10) for i in range(5)], "refund", 1, chunk=2)
    assert [(row.stream, row.seq, len(row.body)) for row in rows] == [("revocations", 1, 2), ("revocations", 2, 2), ("revocations", 3, 1)]
    command = store.add_command("g1", Command("emergency_open", {"on": True}), 2)
    assert (command.stream, command.seq) == ("command/g1", 1)
    assert [row.row_id for row in store.unpublished(10)] == [row.row_id for row in rows] + [command.row_id]
    store.mark_published([rows[0].row_id])
    assert len(store.unpublished(10)) == 3 and store.unpublished(10, after_row_id=rows[2].row_id)[0].stream == "command/g1"


def test_revocation_snapshot_drops_expired_entries_and_names_its_seq(store):
    store.add_revocations([RevocationEntry(b"a" * 12, NOW - 1)], None, 0, 100)
    store.unpublished(10)  # taken for publishing: closed
    store.add_revocations([RevocationEntry(b"b" * 12, NOW + 1)], None, 0, 100)
    assert store.revocation_snapshot(NOW) == (2, [RevocationEntry(b"b" * 12, NOW + 1)])


def test_single_revocations_join_the_delta_not_yet_taken_for_publishing(store):
    """A burst of one-ticket refunds is a few deltas for the gates, not one each (a broker queue of 1,000 per gate)."""
    tickets = [bytes([i]) * 12 for i in range(6)]
    seqs = [row.seq for ticket in tickets[:3] for row in store.add_revocations([RevocationEntry(ticket, NOW + 10)], "refund", 1, chunk=4)]
    assert seqs == [1, 1, 1]
    (taken,) = store.unpublished(10)
    assert (taken.seq, [entry[0] for entry in taken.body]) == (1, tickets[:3])
    seqs = [row.seq for ticket in tickets[3:] for row in store.add_revocations([RevocationEntry(ticket, NOW + 10)], "refund", 2, chunk=4)]
    assert seqs == [2, 2, 2], "a delta taken for publishing never changes"
    assert [len(row.body) for row in store.unpublished(10)] == [3, 3]


def test_a_ticket_revoked_twice_in_an_open_delta_is_sent_once_with_its_last_expiry(store):
    store.add_revocations([RevocationEntry(b"a" * 12, NOW + 10)], None, 0, 100)
    store.add_revocations([RevocationEntry(b"a" * 12, NOW + 20), RevocationEntry(b"b" * 12, NOW + 10)], None, 0, 100)
    (taken,) = store.unpublished(10)
    assert sorted(taken.body) == [[b"a" * 12, NOW + 20], [b"b" * 12, NOW + 10]]


def test_a_snapshot_closes_the_open_delta_so_its_seq_never_grows_after(store):
    store.add_revocations([RevocationEntry(b"a" * 12, NOW + 10)], None, 0, 100)
    as_of, entries = store.revocation_snapshot(NOW)
    assert as_of == 1 and {entry.ticket_id for entry in entries} == {b"a" * 12}
    assert [row.seq for row in store.add_revocations([RevocationEntry(b"b" * 12, NOW + 10)], None, 0, 100)] == [2]


def test_revocations_that_do_not_fit_the_open_delta_start_new_ones(store):
    store.add_revocations([RevocationEntry(b"a" * 12, NOW + 10)], None, 0, 2)
    rows = store.add_revocations([RevocationEntry(bytes([i]) * 12, NOW + 10) for i in range(3)], None, 0, 2)
    assert [(row.seq, len(row.body)) for row in rows] == [(2, 2), (3, 1)]
    assert [row.seq for row in store.add_revocations([RevocationEntry(b"z" * 12, NOW + 10)], None, 0, 2)] == [3], "only the newest delta is open"
    assert [(row.seq, len(row.body)) for row in store.unpublished(10)] == [(1, 1), (2, 2), (3, 2)]


def test_used_snapshot_keeps_marks_until_ticket_expiry_or_retention(store):
    old_no_expiry = UsedMark(b"a" * 12, "g1", "main", "2026-11-18", 1, 0, 0)
    recent = UsedMark(b"b" * 12, "g1", "main", "2026-11-18", 1, 0, NOW * 1000)
    old_long_ticket = UsedMark(b"c" * 12, "g1", "main", "2026-11-18", 1, 0, 0, expires=NOW + 3600)
    store.add_used_marks([old_no_expiry, recent, old_long_ticket], 0, chunk=2)
    assert store.used_snapshot(NOW * 1000, 86_400_000) == (2, [recent, old_long_ticket])


def test_another_connections_commit_is_noticed(store, tmp_path):
    assert not store.changed_elsewhere()
    other = SqliteHubStore(tmp_path / "hub.db")
    other.add_revocations([RevocationEntry(b"a" * 12, NOW)], None, 0, 10)
    other.close()
    assert store.changed_elsewhere() and not store.changed_elsewhere()


def test_only_events_that_changed_a_tickets_counters_become_used_marks():
    usage = {"zone": "main", "day": "2026-11-18", "entries": 1, "exits": 0}
    admission = replace(events("g1", [1])[0], data=decode_event_data({"usage": usage, "expires": NOW + 60}))
    rollback = replace(events("g1", [2], "rollback")[0], data=decode_event_data({"usage": {**usage, "entries": 0}}))
    deny = replace(events("g1", [3], "deny")[0], data=admission.data)
    assert used_mark_for(admission) == UsedMark(b"t" * 12, "g1", "main", "2026-11-18", 1, 0, NOW * 1000, NOW + 60)
    assert used_mark_for(rollback).entries == 0
    assert used_mark_for(deny) is None


def test_a_database_of_a_hub_before_coalescing_is_brought_up_to_date(tmp_path):
    SqliteHubStore(tmp_path / "hub.db").close()
    with sqlite3.connect(tmp_path / "hub.db") as db:
        db.execute("DROP INDEX outbox_open")
        db.execute("ALTER TABLE outbox DROP COLUMN open")
    store = SqliteHubStore(tmp_path / "hub.db")
    try:
        store.add_revocations([RevocationEntry(b"a" * 12, NOW + 10)], None, 0, 10)
        assert [row.seq for row in store.add_revocations([RevocationEntry(b"b" * 12, NOW + 10)], None, 0, 10)] == [1]
    finally:
        store.close()
