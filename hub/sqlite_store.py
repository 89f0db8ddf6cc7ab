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
from protocol.messages import (
    Command,
    GateEvent,
    HealthReport,
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
from protocol.topics import REVOCATIONS, USED, command_stream, quota_stream

from .quota import GateReport, GateSlot, LeaseGrant, Quota, QuotaUse, SentLease, SlotReport
from .store import GateHealth, OutboxRow, StoredBatch

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id BLOB PRIMARY KEY, gate TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL, ticket_id BLOB, data BLOB NOT NULL, received_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_gate_seq ON events (gate, seq);
CREATE TABLE IF NOT EXISTS gate_progress (gate TEXT PRIMARY KEY, contiguous_seq INTEGER NOT NULL);
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
    born_ms INTEGER, died_ms INTEGER, birth BLOB, heartbeat BLOB
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
    report_at INTEGER, report_lease INTEGER, report_used INTEGER,
    PRIMARY KEY (day, slot_start, gate)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_recent (
    day TEXT NOT NULL, slot_start INTEGER NOT NULL, gate TEXT NOT NULL, bucket INTEGER NOT NULL, persons INTEGER NOT NULL,
    PRIMARY KEY (day, slot_start, gate, bucket)
) WITHOUT ROWID;
"""

SYNCHRONOUS = ("full", "normal", "off")
RECENT_BUCKET_MS = 10_000  # granularity of a gate's recent demand (hub.quota.GateSlot.recent)

SYNCHRONOUS = ("full", "normal", "off")


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
        self._db.executescript(SCHEMA)
        self._depth = 0
        self._contiguous: dict[str, int] = {}
        self._pending: dict[str, set[int]] = {}
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
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _version(self) -> int:
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def changed_elsewhere(self) -> bool:
        version = self._version()
        changed, self._data_version = version != self._data_version, version
        return changed

    def close(self) -> None:
        self._db.close()

    # ---- events ----

    def _load_gate(self, gate: str) -> int:
        if gate not in self._contiguous:
            row = self._db.execute("SELECT contiguous_seq FROM gate_progress WHERE gate = ?", (gate,)).fetchone()
            start = row[0] if row else 0
            self._contiguous[gate] = start
            self._pending[gate] = {seq for (seq,) in self._db.execute("SELECT seq FROM events WHERE gate = ? AND seq > ?", (gate, start))}
        return self._contiguous[gate]

    def store_events(self, events: Sequence[GateEvent], received_ms: int) -> StoredBatch:
        new: list[GateEvent] = []
        touched: set[str] = set()
        insert = "INSERT OR IGNORE INTO events (event_id, gate, seq, kind, at_ms, ticket_id, data, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        for event in events:
            contiguous = self._load_gate(event.gate)
            touched.add(event.gate)
            cursor = self._db.execute(insert, (event.event_id, event.gate, event.seq, event.kind, event.at_ms, event.ticket_id, encode(event.data), received_ms))
            if cursor.rowcount != 1:
                continue
            pending = self._pending[event.gate]
            if event.seq <= contiguous or event.seq in pending:
                log.warning("gate %s sent a new event id for seq %d, which is already stored", event.gate, event.seq)
            pending.add(event.seq)
            new.append(event)
        for gate in touched:
            before = contiguous = self._contiguous[gate]
            pending = self._pending[gate]
            while contiguous + 1 in pending:
                contiguous += 1
                pending.discard(contiguous)
            if contiguous != before:
                self._contiguous[gate] = contiguous
                self._db.execute("INSERT INTO gate_progress VALUES (?, ?) ON CONFLICT (gate) DO UPDATE SET contiguous_seq = excluded.contiguous_seq", (gate, contiguous))
        return StoredBatch(new, {gate: self._contiguous[gate] for gate in touched}, len(events) - len(new))

    def contiguous_seq(self, gate: str) -> int:
        return self._load_gate(gate)

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
        row = self._db.execute("SELECT gate, online, bdseq, last_seen_ms, born_ms, died_ms, birth, heartbeat FROM gates WHERE gate = ?", (gate,)).fetchone()
        return self._health(row) if row else None

    def _health(self, row: tuple) -> GateHealth:
        gate, online, bdseq, last_seen, born, died, birth, heartbeat = row
        return GateHealth(gate, bool(online), bdseq, last_seen, born, died, _cbor(birth), _cbor(heartbeat), self.contiguous_seq(gate))

    def save_health(self, health: GateHealth, report: HealthReport, received_ms: int) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO gates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (health.gate, int(health.online), health.bdseq, health.last_seen_ms, health.born_ms, health.died_ms, encode(health.birth), encode(health.heartbeat)),
            )
            self._db.execute("INSERT INTO gate_history (gate, kind, received_ms, fields) VALUES (?, ?, ?, ?)", (health.gate, report.kind, received_ms, encode(report.fields)))

    def gates(self) -> list[GateHealth]:
        rows = self._db.execute("SELECT gate, online, bdseq, last_seen_ms, born_ms, died_ms, birth, heartbeat FROM gates ORDER BY gate").fetchall()
        return [self._health(row) for row in rows]

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

    def add_quota_uses(self, uses: Sequence[QuotaUse]) -> None:
        totals: Counter[tuple[str, int, str]] = Counter()
        buckets: Counter[tuple[str, int, str, int]] = Counter()
        for use in uses:
            totals[use.day, use.slot_start, use.gate] += use.persons
            buckets[use.day, use.slot_start, use.gate, use.at_ms // RECENT_BUCKET_MS] += use.persons
        with self.transaction():
            self._db.executemany(
                "INSERT INTO quota_gates (day, slot_start, gate, admitted) VALUES (?, ?, ?, ?) ON CONFLICT (day, slot_start, gate) DO UPDATE SET admitted = admitted + excluded.admitted",
                [(*key, persons) for key, persons in totals.items()],
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
            known = self._db.execute("SELECT gate, admitted, report_at, report_lease, report_used FROM quota_gates WHERE day = ? AND slot_start = ?", slot).fetchall()
        gates = {gate: GateSlot(gate, admitted=admitted, report=None if at is None else GateReport(at, lease_id, used)) for gate, admitted, at, lease_id, used in known}
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
