"""The hub's outbox: signed streams to gates, one seq per message, published after commit (hub/sqlite_store.py).

A message is recorded with its stream seq in the same transaction as what it
says (a revocation, a used mark, a lease), and published only after commit, so
a crash never publishes what was not stored nor loses what was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from protocol.cbor import decode_exactly, encode
from protocol.hub_messages import (
    Command,
    RevocationEntry,
    UsedMark,
    command_body,
    decode_used_mark,
    revocations_body,
    used_body,
    used_mark_map,
)
from protocol.topics import REVOCATIONS, USED, command_stream, quota_stream

from .sqlite_tables import Tables
from .store import OutboxRow


class OutboxTables(Tables):
    """Tables stream_seq, outbox, revocations, used_marks."""

    def _reserve(self, stream: str, count: int) -> int:
        """Reserve ``count`` seqs of ``stream``; returns the first."""
        row = self._db.execute(
            "INSERT INTO stream_seq VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET last_seq = last_seq + ? RETURNING last_seq", (stream, count, count)
        ).fetchone()
        return row[0] - count + 1

    def next_seq(self, stream: str, count: int = 1) -> int:
        with self.transaction():
            return self._reserve(stream, count)

    def last_seq(self, stream: str) -> int:
        row = self._db.execute("SELECT last_seq FROM stream_seq WHERE stream = ?", (stream,)).fetchone()
        return row[0] if row else 0

    def _insert_row(self, stream: str, seq: int, at_ms: int, body: object) -> OutboxRow:
        cursor = self._db.execute("INSERT INTO outbox (stream, seq, at_ms, body) VALUES (?, ?, ?, ?)", (stream, seq, at_ms, encode(body)))
        assert cursor.lastrowid is not None  # an INSERT always sets it
        return OutboxRow(cursor.lastrowid, stream, seq, at_ms, body)

    def _append(self, stream: str, bodies: Sequence[object], at_ms: int) -> list[OutboxRow]:
        first = self._reserve(stream, len(bodies))
        return [self._insert_row(stream, first + offset, at_ms, body) for offset, body in enumerate(bodies)]

    def add_revocations(self, entries: Sequence[RevocationEntry], reason: str | None, at_ms: int, chunk: int) -> list[OutboxRow]:
        with self.transaction():
            parts = [list(entries[start:start + chunk]) for start in range(0, len(entries), chunk)]
            rows = self._append(REVOCATIONS, [revocations_body(part) for part in parts], at_ms)
            for row, part in zip(rows, parts):
                self._db.executemany(
                    "INSERT INTO revocations VALUES (?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO UPDATE SET expires = excluded.expires, reason = excluded.reason, seq = excluded.seq",
                    [(entry.ticket_id, entry.expires, reason, row.seq, at_ms) for entry in part],
                )
            return rows

    def add_used_marks(self, marks: Sequence[UsedMark], at_ms: int, chunk: int) -> list[OutboxRow]:
        with self.transaction():
            parts = [list(marks[start:start + chunk]) for start in range(0, len(marks), chunk)]
            rows = self._append(USED, [used_body(part) for part in parts], at_ms)
            for row, part in zip(rows, parts):
                self._db.executemany(
                    "INSERT INTO used_marks (seq, at_ms, expires, mark) VALUES (?, ?, ?, ?)",
                    [(row.seq, mark.at_ms, mark.expires, encode(used_mark_map(mark))) for mark in part],
                )
            return rows

    def add_command(self, gate: str, command: Command, at_ms: int) -> OutboxRow:
        with self.transaction():
            return self._append(command_stream(gate), [command_body(command)], at_ms)[0]

    def unpublished(self, limit: int, after_row_id: int = 0) -> list[OutboxRow]:
        rows = self._db.execute("SELECT row_id, stream, seq, at_ms, body FROM outbox WHERE published = 0 AND row_id > ? ORDER BY row_id LIMIT ?", (after_row_id, limit))
        return [OutboxRow(row_id, stream, seq, at_ms, decode_exactly(body, "outbox body", allow_floats=True)) for row_id, stream, seq, at_ms, body in rows]

    def mark_published(self, row_ids: Sequence[int]) -> None:
        with self.transaction():
            self._db.executemany("UPDATE outbox SET published = 1 WHERE row_id = ?", [(row_id,) for row_id in row_ids])

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction: every SELECT inside sees the same committed state (WAL), and no write lock is
        taken, so a snapshot read for seconds on another connection (hub/snapshot_builder.py) never holds up the worker's commits."""
        if self._db.in_transaction:  # inside the store's own transaction: already one view
            yield
            return
        self._db.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            if self._db.in_transaction:  # not after an interrupt (hub/snapshot_builder.py stopping) that ended it
                self._db.execute("COMMIT")

    def revocation_snapshot(self, now_s: int) -> tuple[int, list[RevocationEntry]]:
        with self._reading():  # one read snapshot for the seq and the set
            as_of = self.last_seq(REVOCATIONS)
            rows = self._db.execute("SELECT ticket_id, expires FROM revocations WHERE expires > ?", (now_s,)).fetchall()
            return as_of, [RevocationEntry(ticket_id, expires) for ticket_id, expires in rows]

    def used_snapshot(self, now_ms: int, retention_ms: int) -> tuple[int, list[UsedMark]]:
        with self._reading():
            rows = self._db.execute(
                "SELECT mark FROM used_marks WHERE coalesce(expires * 1000, at_ms + ?) > ? ORDER BY id", (retention_ms, now_ms)
            ).fetchall()
            return self.last_seq(USED), [decode_used_mark(decode_exactly(mark, "used mark")) for (mark,) in rows]

    def republish_leases(self, gate: str, first_day: str) -> int:
        """Mark the gate's newest lease of every slot from ``first_day`` on for publishing again; returns how many.

        For a gate whose state is new (wiped, replaced, reset): it holds no
        lease, and a gate treats a slot without a lease as uncapped. A gate that
        still has them refuses the copies as replays.
        """
        with self.transaction():
            return self._db.execute(
                "UPDATE outbox SET published = 0 WHERE stream = ? AND seq IN"
                " (SELECT max(lease_id) FROM quota_leases WHERE gate = ? AND day >= ? GROUP BY day, slot_start)",
                (quota_stream(gate), gate, first_day),
            ).rowcount

    def published_head(self, stream: str) -> int:
        """The highest seq of ``stream`` the broker has acknowledged (0 when none)."""
        row = self._db.execute("SELECT max(seq) FROM outbox WHERE stream = ? AND published = 1", (stream,)).fetchone()
        return row[0] or 0
