"""The gate's event outbox and the admissions awaiting the turnstile (gate/cache/state.py)."""

from __future__ import annotations

import os
import sqlite3

import cbor2

from protocol.gate_messages import EventKind

from .records import OpenAdmission, PendingEvent
from .state_meta import MetaTables


class OutboxTables(MetaTables):
    """Tables outbox and open_admission, and the stream seqs of hub messages."""

    _appended: bool  # the open transaction added outbox events: announce them once it commits

    def append_event(self, db: sqlite3.Connection, kind: EventKind, at_ms: int, ticket_id: bytes | None, data: dict, event_id: bytes | None = None) -> PendingEvent:
        """Append to the outbox inside an open transaction. Seqs never repeat, even after pruning.

        ``event_id`` is new unless given (an event salvaged from a quarantined state keeps its id).
        """
        seq = self._count(db, "next_seq", 1)
        event = PendingEvent(seq, event_id or os.urandom(16), kind, at_ms, ticket_id, data)
        db.execute(
            "INSERT INTO outbox(seq, event_id, kind, at_ms, ticket_id, data) VALUES (?,?,?,?,?,?)",
            (seq, event.event_id, kind, at_ms, ticket_id, cbor2.dumps(data)),
        )
        self._set_meta(db, "next_seq", seq + 1)
        self._appended = True
        return event

    def record_event(self, kind: EventKind, at_ms: int, ticket_id: bytes | None, data: dict) -> PendingEvent:
        with self.transaction() as db:
            return self.append_event(db, kind, at_ms, ticket_id, data)

    def pending_events(self, after_seq: int = 0, limit: int = 500) -> list[PendingEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, kind, at_ms, ticket_id, data FROM outbox WHERE seq>? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [PendingEvent(seq, eid, EventKind(kind), at, tid, cbor2.loads(data)) for seq, eid, kind, at, tid, data in rows]

    def acknowledge(self, up_to_seq: int, stream_seq: tuple[str, int] | None = None) -> int:
        """Drop events the hub has stored; returns how many were pruned."""
        with self.transaction() as db:
            pruned = db.execute("DELETE FROM outbox WHERE seq<=?", (up_to_seq,)).rowcount
            if up_to_seq > self._count(db, "acked_seq", 0):
                self._set_meta(db, "acked_seq", up_to_seq)
            if stream_seq is not None:
                self._set_meta(db, f"seq:{stream_seq[0]}", stream_seq[1])
        return pruned

    def stream_seqs(self) -> dict[str, int]:
        """The last applied seq of each hub stream kept here (all but revocations, kept with the set)."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'seq:%'").fetchall()
        return {key[4:]: value for key, value in rows}

    def set_stream_seq(self, stream: str, seq: int) -> None:
        self.set_meta(f"seq:{stream}", seq)

    def backlog(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    # -- admissions awaiting the turnstile -------------------------------------------

    def open_admission(self, db: sqlite3.Connection, admission: OpenAdmission) -> None:
        """Remember an admission until the turnstile settles it, in the admission's own transaction."""
        db.execute(
            "INSERT INTO open_admission(seq, ticket_id, zone, day, minute, persons, direction, expires, pulsed) VALUES (?,?,?,?,?,?,?,?,?)",
            (admission.seq, admission.ticket_id, admission.zone, admission.day, admission.minute, admission.persons, admission.direction, admission.expires, int(admission.pulsed)),
        )

    def mark_pulsed(self, seq: int) -> None:
        """Durably note that the relay is about to open for admission ``seq`` (one fsync'ed commit)."""
        with self.transaction() as db:
            db.execute("UPDATE open_admission SET pulsed=1 WHERE seq=?", (seq,))

    def settle_admission(self, db: sqlite3.Connection, seq: int) -> None:
        db.execute("DELETE FROM open_admission WHERE seq=?", (seq,))

    def open_admissions(self) -> list[OpenAdmission]:
        with self._lock:
            rows = self._db.execute("SELECT seq, ticket_id, zone, day, minute, persons, direction, expires, pulsed FROM open_admission ORDER BY seq").fetchall()
        return [OpenAdmission(seq, ticket_id, zone, day, minute, persons, direction, expires, bool(pulsed))
                for seq, ticket_id, zone, day, minute, persons, direction, expires, pulsed in rows]
