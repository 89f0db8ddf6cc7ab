"""The hub store in one SQLite file: WAL, one writer connection per process.

Durability: ``synchronous=FULL`` (the default) fsyncs the WAL at every commit,
so an event the hub has acknowledged survives a power cut; the gate prunes on
that acknowledgement, so NORMAL (which may lose the last commits on power
loss, though never corrupts) would turn a power cut into lost events. The
ingest batches many events per transaction, which is what makes FULL cheap
enough (see bench/bench_hub.py). Other processes (the ``lungta hub revoke``
CLI) write through their own connection; ``busy_timeout`` serialises them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from protocol.cbor import decode_exactly, encode
from protocol.hub_messages import (
    Command,
    QuotaLease,
    RevocationEntry,
    UsedMark,
    command_body,
    decode_used_mark,
    lease_body,
    revocations_body,
    used_body,
    used_mark_map,
)
from protocol.gate_messages import GateEvent, HealthReport, event_data_map
from protocol.topics import REVOCATIONS, USED, command_stream, quota_stream

from .quota import GateReport, GateSlot, LeaseGrant, Quota, QuotaUse, SentLease, SlotReport
from .ingest import TicketFacts
from .store import GateHealth, OutboxRow, StoredBatch

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id BLOB PRIMARY KEY, gate TEXT NOT NULL, incarnation BLOB NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL, ticket_id BLOB, data BLOB NOT NULL, received_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_ms);
CREATE TABLE IF NOT EXISTS event_seqs (
    gate TEXT NOT NULL, incarnation BLOB NOT NULL, seq INTEGER NOT NULL, event_id BLOB NOT NULL,
    PRIMARY KEY (gate, incarnation, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gate_progress (
    gate TEXT NOT NULL, incarnation BLOB NOT NULL, contiguous_seq INTEGER NOT NULL, PRIMARY KEY (gate, incarnation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verified_tickets (
    ticket_id BLOB PRIMARY KEY, expires INTEGER NOT NULL, persons INTEGER NOT NULL, entries INTEGER NOT NULL, zones TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_seq (stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    row_id INTEGER PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    body BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0, UNIQUE (stream, seq)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (row_id) WHERE published = 0;
CREATE TABLE IF NOT EXISTS revocations (
    ticket_id BLOB PRIMARY KEY, expires INTEGER NOT NULL, reason TEXT, seq INTEGER NOT NULL, recorded_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS used_marks (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL, expires INTEGER, mark BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS gates (
    gate TEXT PRIMARY KEY, online INTEGER NOT NULL, bdseq INTEGER, last_seen_ms INTEGER NOT NULL,
    born_ms INTEGER, died_ms INTEGER, birth BLOB, heartbeat BLOB, incarnation BLOB,
    resets INTEGER NOT NULL DEFAULT 0, reset_ms INTEGER, refused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS gate_history (id INTEGER PRIMARY KEY, gate TEXT NOT NULL, kind TEXT NOT NULL, received_ms INTEGER NOT NULL, fields BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS gate_history_by_gate ON gate_history (gate, id);
CREATE TABLE IF NOT EXISTS quotas (
    day TEXT NOT NULL, slot_start INTEGER NOT NULL, slot_end INTEGER NOT NULL, cap INTEGER NOT NULL, set_ms INTEGER NOT NULL,
    PRIMARY KEY (day, slot_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_leases (
    day TEXT NOT NULL, slot_start INTEGER NOT NULL, gate TEXT NOT NULL, lease_id INTEGER NOT NULL,
    granted INTEGER NOT NULL, expires_ms INTEGER NOT NULL, issued_ms INTEGER NOT NULL,
    PRIMARY KEY (day, slot_start, gate, lease_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_gates (
    day TEXT NOT NULL, slot_start INTEGER NOT NULL, gate TEXT NOT NULL, admitted INTEGER NOT NULL DEFAULT 0,
    report_at INTEGER, report_lease INTEGER, report_used INTEGER, unleased INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, slot_start, gate)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_recent (
    day TEXT NOT NULL, slot_start INTEGER NOT NULL, gate TEXT NOT NULL, bucket INTEGER NOT NULL, persons INTEGER NOT NULL,
    PRIMARY KEY (day, slot_start, gate, bucket)
) WITHOUT ROWID;
"""

SYNCHRONOUS = ("full", "normal", "off")
RECENT_BUCKET_MS = 10_000  # granularity of a gate's recent demand (hub.quota.GateSlot.recent)
SCHEMA_VERSION = 2  # wire format 2: events keyed by (gate, incarnation, seq)
GATE_COLUMNS = "gate, online, bdseq, last_seen_ms, born_ms, died_ms, birth, heartbeat, incarnation, resets, reset_ms, refused"
Stream = tuple[str, bytes]  # (gate, incarnation): one gate state's event sequence


class HubStoreError(Exception):
    """The hub database cannot be used as it is; names the file."""


def _cbor(blob: bytes | None) -> dict:
    return decode_exactly(blob, "stored map", allow_floats=True) if blob else {}  # heartbeats carry temperature_c


class SqliteHubStore:
    """``HubStore`` on SQLite. Not thread-safe: one instance per thread."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION) or (version == 0 and self._has_table("events")):
            raise HubStoreError(f"{path}: made by an older Lungta hub (schema {version}, this one needs {SCHEMA_VERSION}); move it aside to start a new one")
        self._db.executescript(SCHEMA)
        if "unleased" not in {row[1] for row in self._db.execute("PRAGMA table_info(quota_gates)")}:  # a database of a hub before it counted unleased admissions
            self._db.execute("ALTER TABLE quota_gates ADD COLUMN unleased INTEGER NOT NULL DEFAULT 0")
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._depth = 0
        self._contiguous: dict[Stream, int] = {}
        self._pending: dict[Stream, set[int]] = {}
        self._max: dict[Stream, int] = {}
        self._data_version = self._version()

    # ---- transactions ----

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._contiguous.clear()  # the cache may hold what was rolled back; reload lazily
            self._pending.clear()
            self._max.clear()
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _has_table(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def _version(self) -> int:
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def changed_elsewhere(self) -> bool:
        version = self._version()
        changed, self._data_version = version != self._data_version, version
        return changed

    def close(self) -> None:
        self._db.close()

    # ---- events ----

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

    # ---- outbox ----

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

    def revocation_snapshot(self, now_s: int) -> tuple[int, list[RevocationEntry]]:
        with self.transaction():  # one read snapshot for the seq and the set
            rows = self._db.execute("SELECT ticket_id, expires FROM revocations WHERE expires > ? ORDER BY ticket_id", (now_s,)).fetchall()
            return self.last_seq(REVOCATIONS), [RevocationEntry(ticket_id, expires) for ticket_id, expires in rows]

    def used_snapshot(self, now_ms: int, retention_ms: int) -> tuple[int, list[UsedMark]]:
        with self.transaction():
            rows = self._db.execute(
                "SELECT mark FROM used_marks WHERE coalesce(expires * 1000, at_ms + ?) > ? ORDER BY id", (retention_ms, now_ms)
            ).fetchall()
            return self.last_seq(USED), [decode_used_mark(decode_exactly(mark, "used mark")) for (mark,) in rows]

    # ---- health ----

    def gate_health(self, gate: str) -> GateHealth | None:
        row = self._db.execute(f"SELECT {GATE_COLUMNS} FROM gates WHERE gate = ?", (gate,)).fetchone()
        return self._health(row) if row else None

    def _health(self, row: tuple) -> GateHealth:
        gate, online, bdseq, last_seen, born, died, birth, heartbeat, incarnation, resets, reset_ms, refused = row
        acked = self.contiguous_seq(gate, incarnation) if incarnation else 0
        return GateHealth(gate, bool(online), bdseq, last_seen, born, died, _cbor(birth), _cbor(heartbeat), acked, incarnation, resets, reset_ms, refused)

    def save_health(self, health: GateHealth, report: HealthReport, received_ms: int) -> None:
        with self.transaction():
            self._db.execute(
                f"INSERT OR REPLACE INTO gates ({GATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (health.gate, int(health.online), health.bdseq, health.last_seen_ms, health.born_ms, health.died_ms, encode(dict(health.birth)), encode(dict(health.heartbeat)),
                 health.incarnation, health.resets, health.reset_ms, health.refused),
            )
            self._db.execute("INSERT INTO gate_history (gate, kind, received_ms, fields) VALUES (?, ?, ?, ?)", (health.gate, report.kind.value, received_ms, encode(dict(report.fields))))

    def _touch_gate(self, gate: str, now_ms: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO gates (gate, online, last_seen_ms) VALUES (?, 0, ?)", (gate, now_ms))

    def record_reset(self, gate: str, now_ms: int) -> None:
        with self.transaction():
            self._touch_gate(gate, now_ms)
            self._db.execute("UPDATE gates SET resets = resets + 1, reset_ms = ? WHERE gate = ?", (now_ms, gate))

    def count_refused(self, counts: dict[str, int], now_ms: int) -> None:
        with self.transaction():
            for gate, count in counts.items():
                self._touch_gate(gate, now_ms)
                self._db.execute("UPDATE gates SET refused = refused + ? WHERE gate = ?", (count, gate))

    def gates(self) -> list[GateHealth]:
        rows = self._db.execute(f"SELECT {GATE_COLUMNS} FROM gates ORDER BY gate").fetchall()
        return [self._health(row) for row in rows]

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

    def history(self, gate: str, limit: int) -> list[tuple[int, str, dict]]:
        rows = self._db.execute("SELECT received_ms, kind, fields FROM gate_history WHERE gate = ? ORDER BY id DESC LIMIT ?", (gate, limit))
        return [(received, kind, _cbor(fields)) for received, kind, fields in rows]

    # ---- quotas ----

    def set_quota(self, quota: Quota, at_ms: int) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO quotas VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, slot_start) DO UPDATE SET slot_end = excluded.slot_end, cap = excluded.cap, set_ms = excluded.set_ms",
                (quota.day, quota.slot_start, quota.slot_end, quota.cap, at_ms),
            )

    def quotas(self, first_day: str | None = None, last_day: str | None = None) -> list[Quota]:
        rows = self._db.execute(
            "SELECT day, slot_start, slot_end, cap FROM quotas WHERE day >= ? AND day <= ? ORDER BY day, slot_start", (first_day or "", last_day or "9999-12-31")
        )
        return [Quota(*row) for row in rows]

    def _lease_room(self, key: tuple[str, int, str]) -> int:
        """Persons the gate may still count in the slot: the largest lease it was sent minus what it counted."""
        row = self._db.execute(
            "SELECT coalesce((SELECT max(granted) FROM quota_leases WHERE day = ? AND slot_start = ? AND gate = ?), 0)"
            " - coalesce((SELECT admitted FROM quota_gates WHERE day = ? AND slot_start = ? AND gate = ?), 0)", key + key
        ).fetchone()
        return max(0, row[0])

    def add_quota_uses(self, uses: Sequence[QuotaUse]) -> None:
        """Count persons, each gate bounded by the leases it holds: a gate claiming 2^31 persons cannot starve the slot.

        A use under no lease (``leased`` False) is counted apart, bounded only by its verified ticket's persons.
        """
        totals: Counter[tuple[str, int, str]] = Counter()
        unleased: Counter[tuple[str, int, str]] = Counter()
        buckets: Counter[tuple[str, int, str, int]] = Counter()
        room: dict[tuple[str, int, str], int] = {}
        for use in uses:
            key = (use.day, use.slot_start, use.gate)
            if not use.leased:
                unleased[key] += use.persons
                buckets[use.day, use.slot_start, use.gate, use.at_ms // RECENT_BUCKET_MS] += use.persons
                continue
            if key not in room:
                room[key] = self._lease_room(key)
            persons = min(use.persons, room[key] - totals[key])
            if persons < use.persons:
                log.warning("gate %s counted %d person(s) in slot %s %d beyond the leases it holds; %d counted", use.gate, use.persons, use.day, use.slot_start, max(0, persons))
                persons = max(0, persons)
            totals[key] += persons
            buckets[use.day, use.slot_start, use.gate, use.at_ms // RECENT_BUCKET_MS] += persons
        with self.transaction():
            self._db.executemany(
                "INSERT INTO quota_gates (day, slot_start, gate, admitted) VALUES (?, ?, ?, ?) ON CONFLICT (day, slot_start, gate) DO UPDATE SET admitted = admitted + excluded.admitted",
                [(*key, persons) for key, persons in totals.items()],
            )
            self._db.executemany(
                "INSERT INTO quota_gates (day, slot_start, gate, unleased) VALUES (?, ?, ?, ?) ON CONFLICT (day, slot_start, gate) DO UPDATE SET unleased = unleased + excluded.unleased",
                [(*key, persons) for key, persons in unleased.items()],
            )
            self._db.executemany(
                "INSERT INTO quota_recent VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, slot_start, gate, bucket) DO UPDATE SET persons = persons + excluded.persons",
                [(*key, persons) for key, persons in buckets.items()],
            )

    def save_quota_reports(self, gate: str, reports: Sequence[SlotReport]) -> None:
        with self.transaction():
            for item in reports:
                key = (item.day, item.slot_start, gate)
                report = item.report
                self._db.execute(
                    "INSERT INTO quota_gates (day, slot_start, gate, report_at, report_lease, report_used) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (day, slot_start, gate) DO UPDATE SET report_at = excluded.report_at, report_lease = excluded.report_lease, report_used = excluded.report_used"
                    " WHERE report_at IS NULL OR excluded.report_at > report_at",
                    (*key, report.at_ms, report.lease_id, report.used),
                )
                self._db.execute(
                    "DELETE FROM quota_leases WHERE day = ? AND slot_start = ? AND gate = ?"
                    " AND lease_id < (SELECT report_lease FROM quota_gates WHERE day = ? AND slot_start = ? AND gate = ?)",
                    key + key,
                )

    def quota_ledger(self, day: str, slot_start: int, recent_since_ms: int) -> list[GateSlot]:
        with self.transaction():  # one read snapshot
            slot = (day, slot_start)
            leases: dict[str, list[SentLease]] = {}
            for gate, *lease in self._db.execute(
                "SELECT gate, lease_id, granted, expires_ms, issued_ms FROM quota_leases WHERE day = ? AND slot_start = ? ORDER BY gate, lease_id", slot
            ):
                leases.setdefault(gate, []).append(SentLease(*lease))
            recent = dict(self._db.execute(
                "SELECT gate, sum(persons) FROM quota_recent WHERE day = ? AND slot_start = ? AND bucket >= ? GROUP BY gate", (*slot, recent_since_ms // RECENT_BUCKET_MS)
            ))
            known = self._db.execute("SELECT gate, admitted, report_at, report_lease, report_used, unleased FROM quota_gates WHERE day = ? AND slot_start = ?", slot).fetchall()
        gates = {gate: GateSlot(gate, admitted=admitted, report=None if at is None else GateReport(at, lease_id, used), unleased=unleased)
                 for gate, admitted, at, lease_id, used, unleased in known}
        for gate in leases.keys() - gates.keys():
            gates[gate] = GateSlot(gate)
        return [replace(gates[gate], leases=tuple(leases.get(gate, ())), recent=recent.get(gate, 0)) for gate in sorted(gates)]

    def add_leases(self, quota: Quota, grants: Sequence[LeaseGrant], at_ms: int) -> list[OutboxRow]:
        rows = []
        with self.transaction():
            for grant in grants:
                stream = quota_stream(grant.gate)
                lease_id = self._reserve(stream, 1)
                lease = QuotaLease(quota.day, quota.slot_start, quota.slot_end, grant.granted, lease_id, grant.expires_ms)
                self._db.execute("INSERT INTO quota_leases VALUES (?, ?, ?, ?, ?, ?, ?)", (quota.day, quota.slot_start, grant.gate, lease_id, grant.granted, grant.expires_ms, at_ms))
                rows.append(self._insert_row(stream, lease_id, at_ms, lease_body(lease)))
        return rows
