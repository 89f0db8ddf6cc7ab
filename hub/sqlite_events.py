"""The events gates send, stored once each, and the tickets the hub verified (hub/sqlite_store.py).

Each event is kept once by ``event_id`` and each (gate, incarnation, seq) once;
the contiguous seq of each stream (what the hub acknowledges) is cached here
and reloaded after a rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from protocol.cbor import encode
from protocol.gate_messages import GateEvent, event_data_map

from .ingest import TicketFacts
from .sqlite_tables import Tables
from .store import StoredBatch

log = logging.getLogger(__name__)

Stream = tuple[str, bytes]  # (gate, incarnation): one gate state's event sequence


class EventTables(Tables):
    """Tables events, event_seqs, gate_progress, verified_tickets."""

    _contiguous: dict[Stream, int]
    _pending: dict[Stream, set[int]]
    _max: dict[Stream, int]

    def _forget_streams(self) -> None:
        """Drop the cached stream positions (at start, and after a rollback that may have undone some); reloaded lazily."""
        self._contiguous, self._pending, self._max = {}, {}, {}

    def _load_stream(self, key: Stream) -> int:
        if key not in self._contiguous:
            row = self._db.execute("SELECT contiguous_seq FROM gate_progress WHERE gate = ? AND incarnation = ?", key).fetchone()
            start = row[0] if row else 0
            self._contiguous[key] = start
            self._pending[key] = {seq for (seq,) in self._db.execute("SELECT seq FROM event_seqs WHERE gate = ? AND incarnation = ? AND seq > ?", (*key, start))}
            self._max[key] = max(self._pending[key], default=start)
        return self._contiguous[key]

    def store_events(self, events: Sequence[GateEvent], received_ms: int) -> StoredBatch:
        """Each event once by event_id; each (gate, incarnation, seq) once, so a renumbered event fills its new seq."""
        new: list[GateEvent] = []
        touched: set[Stream] = set()
        insert = "INSERT OR IGNORE INTO events (event_id, gate, incarnation, seq, kind, at_ms, ticket_id, data, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        for event in events:
            key = (event.gate, event.incarnation)
            contiguous = self._load_stream(key)
            touched.add(key)
            data = encode(event_data_map(event.data))  # built from checked values, never the gate's own structure
            if self._db.execute(insert, (event.event_id, event.gate, event.incarnation, event.seq, event.kind.value, event.at_ms, event.ticket_id, data, received_ms)).rowcount == 1:
                new.append(event)
            if self._db.execute("INSERT OR IGNORE INTO event_seqs VALUES (?, ?, ?, ?)", (*key, event.seq, event.event_id)).rowcount != 1:
                continue
            if event.seq <= contiguous:
                log.warning("gate %s sent seq %d again under another event id", event.gate, event.seq)
                continue
            self._pending[key].add(event.seq)
            self._max[key] = max(self._max[key], event.seq)
        for key in touched:
            before = contiguous = self._contiguous[key]
            pending = self._pending[key]
            while contiguous + 1 in pending:
                contiguous += 1
                pending.discard(contiguous)
            if contiguous != before:
                self._contiguous[key] = contiguous
                self._db.execute("INSERT INTO gate_progress VALUES (?, ?, ?) ON CONFLICT (gate, incarnation) DO UPDATE SET contiguous_seq = excluded.contiguous_seq", (*key, contiguous))
        return StoredBatch(new, {key: self._contiguous[key] for key in touched}, len(events) - len(new))

    def contiguous_seq(self, gate: str, incarnation: bytes) -> int:
        return self._load_stream((gate, incarnation))

    def max_seq(self, gate: str, incarnation: bytes) -> int:
        self._load_stream((gate, incarnation))
        return self._max[gate, incarnation]

    def remember_tickets(self, facts: Sequence[TicketFacts]) -> None:
        with self.transaction():
            self._db.executemany("INSERT OR REPLACE INTO verified_tickets VALUES (?, ?, ?, ?, ?)", [(f.ticket_id, f.expires, f.persons, f.entries, "\n".join(f.zones)) for f in facts])

    def ticket_facts(self, ticket_id: bytes) -> TicketFacts | None:
        row = self._db.execute("SELECT expires, persons, entries, zones FROM verified_tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
        return None if row is None else TicketFacts(ticket_id, row[0], row[1], row[2], tuple(zone for zone in row[3].split("\n") if zone))

    def prune(self, events_before_ms: int, history_before_ms: int, tickets_expired_before_s: int, archive: Path | None) -> tuple[int, int]:
        """Drop events received before ``events_before_ms`` (copied to ``archive`` first, if given) and older gate history.

        The event sequence bookkeeping at or below each stream's contiguous seq
        goes with the events; what is above it is kept, so an ack never moves back.
        """
        if archive is not None:
            self._db.execute("ATTACH DATABASE ? AS archive", (str(archive),))
        try:
            with self.transaction():
                if archive is not None:
                    self._db.execute("CREATE TABLE IF NOT EXISTS archive.events AS SELECT * FROM main.events WHERE 0")
                    self._db.execute("INSERT INTO archive.events SELECT * FROM main.events WHERE received_ms < ?", (events_before_ms,))
                events = self._db.execute("DELETE FROM events WHERE received_ms < ?", (events_before_ms,)).rowcount
                self._db.execute(
                    "DELETE FROM event_seqs WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.event_id = event_seqs.event_id)"
                    " AND seq <= coalesce((SELECT contiguous_seq FROM gate_progress p WHERE p.gate = event_seqs.gate AND p.incarnation = event_seqs.incarnation), 0)"
                )
                history = self._db.execute("DELETE FROM gate_history WHERE received_ms < ?", (history_before_ms,)).rowcount
                self._db.execute("DELETE FROM verified_tickets WHERE expires < ?", (tickets_expired_before_s,))
        finally:
            if archive is not None:
                self._db.execute("DETACH DATABASE archive")
        return events, history

    def event_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM events").fetchone()[0]
