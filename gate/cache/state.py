"""The gate's durable state in one SQLite file: usage, event outbox, quota leases, meta.

One file and one transaction per decision, so an admission, the usage it
consumes and the event that reports it are committed together or not at all:
a power cut can lose a decision that was never acted on, never half of one.
WAL mode with ``synchronous=FULL`` makes each commit durable before
``record_*`` returns (the turnstile opens only after that); the measured cost
is in docs/BENCHMARKS.md and the reasons in docs/ARCHITECTURE.md.

Thread guarantees: one connection guarded by a lock; any thread may call any
method. Reads used by the engine are single indexed lookups.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import cbor2

from ..rules import Usage

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    ticket_id BLOB NOT NULL, zone TEXT NOT NULL, day TEXT NOT NULL, gate TEXT NOT NULL,
    entries INTEGER NOT NULL DEFAULT 0, exits INTEGER NOT NULL DEFAULT 0, last_at INTEGER,
    PRIMARY KEY (ticket_id, zone, day, gate)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE, kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL, ticket_id BLOB, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quota_lease (
    day TEXT NOT NULL, slot_start INTEGER NOT NULL, slot_end INTEGER NOT NULL,
    granted INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0, lease_id INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (day, slot_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


INCARNATION_KEY = "incarnation"
INCARNATION_BYTES = 16


class StateError(Exception):
    """The state file cannot be opened or is not a Lungta gate state; names the file."""


@dataclass(frozen=True)
class OutboxEvent:
    """One event waiting for the hub's acknowledgement. ``seq`` is per gate, gap-free."""

    seq: int
    event_id: bytes
    kind: str
    at_ms: int
    ticket_id: bytes | None
    data: dict


@dataclass(frozen=True)
class UsageMark:
    """One gate's count for a ticket in a zone on a day: what gates tell each other."""

    ticket_id: bytes
    zone: str
    day: str
    gate: str
    entries: int
    exits: int
    last_at: int | None


class GateStore:
    """Open with ``GateStore.open(directory)``; the file is ``state.sqlite3`` inside it."""

    FILENAME = "state.sqlite3"

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path
        self._after_commit: list[Callable[[], None]] = []
        # In-memory mirrors of two small tables, so the common first scan of a
        # ticket reads no SQL at all. Changed only after a successful COMMIT.
        self._used_ids: set[bytes] = {row[0] for row in connection.execute("SELECT DISTINCT ticket_id FROM usage")}
        self._leases: dict[tuple[str, int], list[int]] = {
            (day, start): [end, granted, used, expires]
            for day, start, end, granted, used, expires in connection.execute("SELECT day, slot_start, slot_end, granted, used, expires_ms FROM quota_lease")
        }

    @classmethod
    def open(cls, directory: Path, synchronous: str = "FULL") -> "GateStore":
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / cls.FILENAME
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={synchronous}")
            connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: cannot open gate state: {exc}") from None
        store = cls(connection, path)
        if store.get_meta(INCARNATION_KEY) is None:
            store.set_meta(INCARNATION_KEY, os.urandom(INCARNATION_BYTES))
        return store

    @property
    def incarnation(self) -> bytes:
        """A random id made with this state: a wiped, replaced or quarantined state is a new incarnation.

        The hub keys a gate's event sequence by (gate, incarnation), so a
        state that starts again at seq 1 is never mistaken for the old one.
        """
        value = self.get_meta(INCARNATION_KEY)
        if not isinstance(value, bytes) or len(value) != INCARNATION_BYTES:
            raise StateError(f"{self.path}: incarnation id missing or damaged")
        return value

    def start_incarnation(self) -> bytes:
        """Begin a new incarnation of this state and return its id.

        For a state the hub says went backwards (restored from a backup, or
        rolled back by corruption): its event seqs may repeat ones the hub
        holds for the old incarnation. The unsent outbox is kept and renumbered
        from 1 under the new id (the hub stores each event once by event_id),
        the old incarnation's ack position is forgotten, and the caller pulls
        full snapshots before it trusts the state again.
        """
        with self.transaction() as db:
            seqs = [seq for (seq,) in db.execute("SELECT seq FROM outbox ORDER BY seq")]
            db.execute("UPDATE outbox SET seq = -seq")
            db.executemany("UPDATE outbox SET seq = ? WHERE seq = ?", [(number, -seq) for number, seq in enumerate(seqs, 1)])
            incarnation = os.urandom(INCARNATION_BYTES)
            self._set_meta(db, INCARNATION_KEY, incarnation)
            self._set_meta(db, "next_seq", len(seqs) + 1)
            self._set_meta(db, "acked_seq", 0)
        return incarnation

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "GateStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; rolled back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._after_commit.clear()
                raise
            self._db.execute("COMMIT")
            for apply in self._after_commit:
                apply()
            self._after_commit.clear()

    # -- reads the engine makes -------------------------------------------------

    def usage(self, ticket_id: bytes, zone: str, day: date) -> Usage:
        if ticket_id not in self._used_ids:
            return Usage()
        with self._lock:
            # SQLite takes the bare column ``gate`` from the row holding MAX(last_at).
            entries, exits, today, last_at, last_gate = self._db.execute(
                "SELECT COALESCE(SUM(entries),0), COALESCE(SUM(exits),0), COALESCE(SUM(CASE WHEN day=? THEN entries END),0), MAX(last_at), gate"
                " FROM usage WHERE ticket_id=? AND zone=?",
                (day.isoformat(), ticket_id, zone),
            ).fetchone()
        return Usage(entries, exits, today, last_gate, last_at)

    def has_usage(self, ticket_id: bytes) -> bool:
        """Whether any gate's admission or exit of this ticket is known here."""
        return ticket_id in self._used_ids

    def quota_remaining(self, day: date, minute: int, now_ms: int) -> int | None:
        """Persons the lease covering ``minute`` still allows; 0 once it expired; None = no quota."""
        found = self._lease_for(day.isoformat(), minute)
        if found is None:
            return None
        lease = found[1]
        return max(0, lease[1] - lease[2]) if now_ms < lease[3] else 0

    def _lease_for(self, day: str, minute: int) -> tuple[int, list[int]] | None:
        """(slot_start, [slot_end, granted, used, expires_ms]) of the lease covering ``minute``."""
        for (lease_day, start), lease in self._leases.items():
            if lease_day == day and start <= minute < lease[0]:
                return start, lease
        return None

    # -- writes: each is one durable transaction --------------------------------

    def add_usage(self, db: sqlite3.Connection, mark_key: tuple[bytes, str, str, str], entries: int, exits: int, at: int) -> UsageMark:
        """Add to this gate's own counters inside an open transaction; returns the new row."""
        ticket_id, zone, day, gate = mark_key
        db.execute(
            "INSERT INTO usage(ticket_id, zone, day, gate, entries, exits, last_at) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT(ticket_id, zone, day, gate) DO UPDATE SET entries=entries+excluded.entries, exits=exits+excluded.exits, last_at=excluded.last_at",
            (ticket_id, zone, day, gate, entries, exits, at),
        )
        row = db.execute("SELECT entries, exits FROM usage WHERE ticket_id=? AND zone=? AND day=? AND gate=?", mark_key).fetchone()
        self._after_commit.append(lambda: self._used_ids.add(ticket_id))
        return UsageMark(ticket_id, zone, day, gate, row[0], row[1], at)

    def apply_usage_marks(self, marks: Iterable[UsageMark], stream_seq: tuple[str, int] | None = None) -> int:
        """Adopt other gates' counters as the hub relayed them, with the stream seq, in one commit.

        A gate's counters are absolute, so a mark replaces the row of its
        (ticket, zone, day, gate) unless that row is newer: applying a mark
        twice, or late, cannot over-count. Returns how many rows changed.
        """
        changed = 0
        with self.transaction() as db:
            for mark in marks:
                changed += db.execute(
                    "INSERT INTO usage(ticket_id, zone, day, gate, entries, exits, last_at) VALUES (?,?,?,?,?,?,?)"
                    " ON CONFLICT(ticket_id, zone, day, gate) DO UPDATE SET entries=excluded.entries, exits=excluded.exits, last_at=excluded.last_at"
                    " WHERE excluded.last_at >= COALESCE(usage.last_at, 0)",
                    (mark.ticket_id, mark.zone, mark.day, mark.gate, mark.entries, mark.exits, mark.last_at),
                ).rowcount
                self._after_commit.append(lambda ticket_id=mark.ticket_id: self._used_ids.add(ticket_id))
            if stream_seq is not None:
                self._set_meta(db, f"seq:{stream_seq[0]}", stream_seq[1])
        return changed

    def apply_usage_mark(self, mark: UsageMark) -> None:
        self.apply_usage_marks([mark])

    def use_quota(self, db: sqlite3.Connection, day: date, minute: int, persons: int) -> int | None:
        """Count persons against the lease covering ``minute`` (negative to give places back).

        Returns the slot start of the lease counted against, None when no lease covers the minute.
        """
        found = self._lease_for(day.isoformat(), minute)
        if found is None:
            return None
        start, lease = found
        db.execute("UPDATE quota_lease SET used = used + ? WHERE day=? AND slot_start=?", (persons, day.isoformat(), start))
        self._after_commit.append(lambda: lease.__setitem__(2, lease[2] + persons))
        return start

    def set_quota_lease(self, day: str, slot_start: int, slot_end: int, granted: int, lease_id: int, expires_ms: int, stream_seq: tuple[str, int] | None = None) -> bool:
        """Install a lease from the hub unless a newer one (higher lease_id) is in place.

        ``used`` survives a new lease: ``granted`` is absolute, so a lease
        below what was already admitted simply admits nobody more.
        """
        with self.transaction() as db:
            changed = db.execute(
                "INSERT INTO quota_lease(day, slot_start, slot_end, granted, used, lease_id, expires_ms) VALUES (?,?,?,?,0,?,?)"
                " ON CONFLICT(day, slot_start) DO UPDATE SET slot_end=excluded.slot_end, granted=excluded.granted, lease_id=excluded.lease_id,"
                " expires_ms=excluded.expires_ms WHERE excluded.lease_id > quota_lease.lease_id",
                (day, slot_start, slot_end, granted, lease_id, expires_ms),
            ).rowcount
            row = db.execute("SELECT slot_end, granted, used, expires_ms FROM quota_lease WHERE day=? AND slot_start=?", (day, slot_start)).fetchone()
            if stream_seq is not None:
                self._set_meta(db, f"seq:{stream_seq[0]}", stream_seq[1])
            self._after_commit.append(lambda: self._leases.__setitem__((day, slot_start), list(row)))
        return changed > 0

    def quota_leases(self) -> list[tuple[str, int, int, int, int, int, int]]:
        """(day, slot_start, slot_end, granted, used, lease_id, expires_ms) of every lease held."""
        with self._lock:
            return self._db.execute("SELECT day, slot_start, slot_end, granted, used, lease_id, expires_ms FROM quota_lease ORDER BY day, slot_start").fetchall()

    def append_event(self, db: sqlite3.Connection, kind: str, at_ms: int, ticket_id: bytes | None, data: dict) -> OutboxEvent:
        """Append to the outbox inside an open transaction. Seqs never repeat, even after pruning."""
        seq = self._meta(db, "next_seq", 1)
        event = OutboxEvent(seq, os.urandom(16), kind, at_ms, ticket_id, data)
        db.execute(
            "INSERT INTO outbox(seq, event_id, kind, at_ms, ticket_id, data) VALUES (?,?,?,?,?,?)",
            (seq, event.event_id, kind, at_ms, ticket_id, cbor2.dumps(data)),
        )
        self._set_meta(db, "next_seq", seq + 1)
        return event

    def record_event(self, kind: str, at_ms: int, ticket_id: bytes | None, data: dict) -> OutboxEvent:
        with self.transaction() as db:
            return self.append_event(db, kind, at_ms, ticket_id, data)

    # -- outbox side the sync client uses -----------------------------------------

    def pending_events(self, after_seq: int = 0, limit: int = 500) -> list[OutboxEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, kind, at_ms, ticket_id, data FROM outbox WHERE seq>? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [OutboxEvent(seq, eid, kind, at, tid, cbor2.loads(data)) for seq, eid, kind, at, tid, data in rows]

    def acknowledge(self, up_to_seq: int, stream_seq: tuple[str, int] | None = None) -> int:
        """Drop events the hub has stored; returns how many were pruned."""
        with self.transaction() as db:
            pruned = db.execute("DELETE FROM outbox WHERE seq<=?", (up_to_seq,)).rowcount
            if up_to_seq > self._meta(db, "acked_seq", 0):
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

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str, default: object = None) -> object:
        with self._lock:
            return self._meta(self._db, key, default)

    def set_meta(self, key: str, value: object) -> None:
        with self.transaction() as db:
            self._set_meta(db, key, value)

    def raise_high_water(self, db: sqlite3.Connection, when: int) -> None:
        """Persist the latest trusted time seen; it only ever moves forward."""
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('clock_high_water', ?) ON CONFLICT(key) DO UPDATE SET value=MAX(value, excluded.value)", (when,)
        )

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str, default: object) -> object:
        row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: object) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "usage_rows": self._db.execute("SELECT COUNT(*) FROM usage").fetchone()[0],
                "outbox_backlog": self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
                "next_event_seq": self._meta(self._db, "next_seq", 1),
                "acked_event_seq": self._meta(self._db, "acked_seq", 0),
            }

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
