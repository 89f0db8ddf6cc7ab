"""The hub's outbox: signed streams to gates, one seq per message, published after commit (hub/sqlite_store.py).

A message is recorded with its stream seq in the same transaction as what it
says (a revocation, a used mark, a lease), and published only after commit, so
a crash never publishes what was not stored nor loses what was.

Revocations made one ticket at a time (a ticket office refunding order after
order, thousands of API calls in a burst) are coalesced: the newest revocation
delta stays *open* until the worker takes it for publishing, and a revocation
committed meanwhile joins it (same seq, up to a chunk) instead of taking a seq
of its own. The number of messages each gate must take is then bounded by the
worker's publishing passes, not by the callers' rate, so a burst never
overflows the broker's per-gate queue (which would drop the gate's pongs with
the deltas and push it to its offline policy). Taking a snapshot closes the
open delta too, so a snapshot's seq never grows after it was read.
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
        """Record revocations with the deltas that carry them: joined to the open delta when they fit, else new deltas (the
        last left open). A joined row is returned with the entries of this call as its body; its full body is written when
        it is closed."""
        with self.transaction():
            joined = self._join_open_delta(entries, at_ms, chunk)
            if joined is not None:
                rows, parts = [joined], [list(entries)]
            else:
                self._close_open_deltas()
                parts = [list(entries[start:start + chunk]) for start in range(0, len(entries), chunk)]
                rows = self._append(REVOCATIONS, [revocations_body(part) for part in parts], at_ms)
                if rows:
                    self._db.execute("UPDATE outbox SET open = ? WHERE row_id = ?", (len(parts[-1]), rows[-1].row_id))
            for row, part in zip(rows, parts):
                self._db.executemany(
                    "INSERT INTO revocations VALUES (?, ?, ?, ?, ?) ON CONFLICT (ticket_id) DO UPDATE SET expires = excluded.expires, reason = excluded.reason, seq = excluded.seq",
                    [(entry.ticket_id, entry.expires, reason, row.seq, at_ms) for entry in part],
                )
            return rows

    def _join_open_delta(self, entries: Sequence[RevocationEntry], at_ms: int, chunk: int) -> OutboxRow | None:
        """The open revocation delta ``entries`` join (counted, not yet written into its body: a join costs the same
        however full the delta is), or None when there is none or they do not fit in its chunk."""
        open_row = self._db.execute("SELECT row_id, seq, open FROM outbox WHERE stream = ? AND open > 0", (REVOCATIONS,)).fetchone()
        if open_row is None or not entries:
            return None
        row_id, seq, held = open_row
        if held + len(entries) > chunk:
            return None
        self._db.execute("UPDATE outbox SET open = ?, at_ms = ? WHERE row_id = ?", (held + len(entries), at_ms, row_id))
        return OutboxRow(row_id, REVOCATIONS, seq, at_ms, revocations_body(entries))

    def _close_open_deltas(self) -> None:
        """Write each open delta's body from the revocations that name its seq (a ticket revoked twice in it is there once)."""
        for row_id, seq in self._db.execute("SELECT row_id, seq FROM outbox WHERE open > 0").fetchall():
            entries = [RevocationEntry(ticket_id, expires) for ticket_id, expires in self._db.execute("SELECT ticket_id, expires FROM revocations WHERE seq = ?", (seq,))]
            self._db.execute("UPDATE outbox SET body = ?, open = 0 WHERE row_id = ?", (encode(revocations_body(entries)), row_id))

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
        """The rows to publish; the open revocation delta is closed in the same transaction, so what is read is what is sent."""
        with self.transaction():
            self._close_open_deltas()
            return self._unpublished(limit, after_row_id)

    def _unpublished(self, limit: int, after_row_id: int) -> list[OutboxRow]:
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
        """The seq is taken first, closing the open delta in a short write so nothing joins a seq the snapshot names;
        the set is read after, so it holds at least that seq's state (a later delta applied on top changes nothing)."""
        with self.transaction():
            self._close_open_deltas()
            as_of = self.last_seq(REVOCATIONS)
        with self._reading():
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
