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
from functools import partial
from pathlib import Path

import cbor2

from protocol.gate_messages import EventKind, LeaseReport

from ..rules import Usage
from .private import create_private_file, make_private_dir
from .schema import INCARNATION_BYTES, INCARNATION_KEY, SCHEMA, CorruptState, StateError, check_meta, check_sqlite, migrate

USAGE_PRUNE_GRACE_SECONDS = 86_400  # a day past a ticket's expiry: clock skew between gates can never revive it

@dataclass(frozen=True)
class PendingEvent:
    """One event in this gate's outbox, waiting for the hub's acknowledgement (``pending_events``).
    ``seq`` is per gate, gap-free. On the wire it becomes a ``protocol.gate_messages.GateEvent``."""

    seq: int
    event_id: bytes
    kind: EventKind
    at_ms: int
    ticket_id: bytes | None
    data: dict


@dataclass(frozen=True)
class UsageCount:
    """One gate's counters for a ticket in a zone on a day, as this gate's store keeps them
    (``last_at`` in Unix s). Relayed between gates as a ``protocol.hub_messages.UsedMark``."""

    ticket_id: bytes
    zone: str
    day: str
    gate: str
    entries: int
    exits: int
    last_at: int | None
    expires: int | None = None  # the ticket's expiry (Unix s) when known: the row is pruned after it


class GateStore:
    """Open with ``GateStore.open(directory)``; the file is ``state.sqlite3`` inside it."""

    FILENAME = "state.sqlite3"

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path
        self.synchronous = "FULL"  # what every durable commit runs with; set by open()
        self._after_commit: list[Callable[[], None]] = []
        self._recorded_listeners: list[Callable[[], None]] = []
        self._appended = False  # the open transaction added outbox events: announce them once it commits
        # In-memory mirrors, so the common first scan of a ticket reads no SQL:
        # the ids of tickets with usage that may still matter, and the small
        # lease table. Changed only after a successful COMMIT. Only live rows
        # are loaded (through the expiry index): a ticket expired before the
        # clock's lower bound minus the grace is refused as expired before its
        # usage is asked for, so a million rows of old tickets cost nothing at
        # open (the idle daemon prunes them).
        self._ids_floor = self._count(connection, "clock_high_water", 0) - USAGE_PRUNE_GRACE_SECONDS
        self._used_ids: set[bytes] = {row[0] for row in connection.execute("SELECT ticket_id FROM usage WHERE expires >= ?", (self._ids_floor,))}
        self._used_ids.update(row[0] for row in connection.execute("SELECT ticket_id FROM usage WHERE expires IS NULL"))
        self._leases: dict[tuple[str, int], list[int]] = {
            (day, start): [end, granted, used, expires]
            for day, start, end, granted, used, expires in connection.execute("SELECT day, slot_start, slot_end, granted, used, expires_ms FROM quota_lease")
        }

    @classmethod
    def open(cls, directory: Path, synchronous: str = "FULL", check: bool = False) -> "GateStore":
        """Open (creating) the state in ``directory``; private to the service user (0700 / 0600).

        ``check`` runs SQLite's quick_check and the schema and meta checks of
        ``check_state`` first: the daemon does, so damage is found at start
        and quarantined (gate/cache/quarantine.py), not at the first scan
        touching a bad page. Raises StateError (CorruptState for damage).
        """
        make_private_dir(directory)
        path = directory / cls.FILENAME
        try:
            create_private_file(path)
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if check:
                check_sqlite(connection, path)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={synchronous}")
            connection.executescript(SCHEMA)
            migrate(connection)
            if check:
                check_meta(connection, path)
        except sqlite3.OperationalError as exc:  # locked, unreadable, disk full: not damage, nothing to quarantine
            if "malformed" in str(exc):
                raise CorruptState(f"{path}: damaged: {exc}") from None
            raise StateError(f"{path}: cannot open gate state: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise CorruptState(f"{path}: damaged: {exc}") from None
        except OSError as exc:
            raise StateError(f"{path}: cannot open gate state: {exc.strerror or exc}") from None
        store = cls(connection, path)
        store.synchronous = synchronous
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
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; rolled back on any exception, also a failed COMMIT.

        ``durable=False`` commits without an fsync of its own (WAL,
        ``synchronous=NORMAL``): safe against a crash of the process, and made
        durable by the next durable commit; a power cut may lose it. For
        records nothing was acted on (denials): see docs/BENCHMARKS.md.
        """
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    self._after_commit.clear()
                    self._appended = False
                    if self._db.in_transaction:  # SQLite rolls back some failed COMMITs (disk full) itself, not all
                        self._db.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    self._db.execute(f"PRAGMA synchronous={self.synchronous}")
            for apply in self._after_commit:
                apply()
            self._after_commit.clear()
            recorded, self._appended = self._appended, False
            listeners = list(self._recorded_listeners)
        if recorded:  # outside the lock: the events are durable, and a listener never holds up the next transaction
            for listener in listeners:
                listener()

    def add_recorded_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each commit that added events to the outbox (never inside the transaction).

        The hub sync subscribes to upload a new event at once, not at its next
        poll. Called on the committing thread: it must be quick and must not raise.
        """
        with self._lock:
            self._recorded_listeners.append(listener)

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

    def cover_usage_since(self, now: int) -> None:
        """Make sure usage of every ticket not expired a grace before ``now`` is known in memory.

        Called when hub time moves the clock's lower bound back (a clock that
        ran ahead): tickets the open skipped as long expired may be valid again.
        """
        floor = now - USAGE_PRUNE_GRACE_SECONDS
        with self._lock:
            if floor >= self._ids_floor:
                return
            self._used_ids.update(row[0] for row in self._db.execute("SELECT ticket_id FROM usage WHERE expires >= ? AND expires < ?", (floor, self._ids_floor)))
            self._ids_floor = floor

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

    def add_usage(self, db: sqlite3.Connection, mark_key: tuple[bytes, str, str, str], entries: int, exits: int, at: int, expires: int | None = None) -> UsageCount:
        """Add to this gate's own counters inside an open transaction; returns the new row.

        ``expires`` (the ticket's, Unix s) lets ``prune_expired_usage`` drop the row later.
        """
        ticket_id, zone, day, gate = mark_key
        db.execute(
            "INSERT INTO usage(ticket_id, zone, day, gate, entries, exits, last_at, expires) VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT(ticket_id, zone, day, gate) DO UPDATE SET entries=entries+excluded.entries, exits=exits+excluded.exits,"
            " last_at=excluded.last_at, expires=COALESCE(excluded.expires, usage.expires)",
            (ticket_id, zone, day, gate, entries, exits, at, expires),
        )
        row = db.execute("SELECT entries, exits FROM usage WHERE ticket_id=? AND zone=? AND day=? AND gate=?", mark_key).fetchone()
        self._after_commit.append(lambda: self._used_ids.add(ticket_id))
        return UsageCount(ticket_id, zone, day, gate, row[0], row[1], at, expires)

    def apply_usage_marks(self, marks: Iterable[UsageCount], stream_seq: tuple[str, int] | None = None) -> int:
        """Adopt other gates' counters as the hub relayed them, with the stream seq, in one commit.

        A gate's counters are absolute, so a mark replaces the row of its
        (ticket, zone, day, gate) unless that row is newer: applying a mark
        twice, or late, cannot over-count. Returns how many rows changed.
        """
        changed = 0
        with self.transaction() as db:
            for mark in marks:
                changed += db.execute(
                    "INSERT INTO usage(ticket_id, zone, day, gate, entries, exits, last_at, expires) VALUES (?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(ticket_id, zone, day, gate) DO UPDATE SET entries=excluded.entries, exits=excluded.exits, last_at=excluded.last_at,"
                    " expires=COALESCE(excluded.expires, usage.expires) WHERE excluded.last_at >= COALESCE(usage.last_at, 0)",
                    (mark.ticket_id, mark.zone, mark.day, mark.gate, mark.entries, mark.exits, mark.last_at, mark.expires),
                ).rowcount
                self._after_commit.append(partial(self._used_ids.add, mark.ticket_id))
            if stream_seq is not None:
                self._set_meta(db, f"seq:{stream_seq[0]}", stream_seq[1])
        return changed

    def apply_usage_mark(self, mark: UsageCount) -> None:
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

    def quota_leases(self) -> list[LeaseReport]:
        """Every lease held, with the persons admitted on it: what the heartbeat reports to the hub."""
        with self._lock:
            rows = self._db.execute("SELECT day, slot_start, slot_end, granted, used, lease_id, expires_ms FROM quota_lease ORDER BY day, slot_start").fetchall()
        return [LeaseReport(*row) for row in rows]

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

    # -- outbox side the sync client uses -----------------------------------------

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

    # -- bounded state ----------------------------------------------------------------

    def prune_expired_usage(self, now: int, limit: int = 1_000, grace_seconds: int = USAGE_PRUNE_GRACE_SECONDS) -> int:
        """Delete up to ``limit`` usage rows of tickets expired ``grace_seconds`` ago; returns how many.

        Small batches, so the daemon can call it between scans without
        holding the lock long. A row whose expiry is not known is kept.
        """
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM usage WHERE (ticket_id, zone, day, gate) IN (SELECT ticket_id, zone, day, gate FROM usage WHERE expires < ? LIMIT ?)",
                (now - grace_seconds, limit),
            ).rowcount

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str, default: object = None) -> object:
        with self._lock:
            return self._meta(self._db, key, default)

    def get_count(self, key: str, default: int = 0) -> int:
        """A meta value that is a count or a time (``next_seq``, ``acked_seq``, ``bdseq``, ``clock_high_water``)."""
        with self._lock:
            return self._count(self._db, key, default)

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
    def _count(db: sqlite3.Connection, key: str, default: int) -> int:
        """Raises CorruptState for a value that is not an integer (``check_meta`` refuses those at open)."""
        value = GateStore._meta(db, key, default)
        if type(value) is not int:
            raise CorruptState(f"meta {key} is {value!r:.40}, not a count")
        return value

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: object) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "usage_rows": self._db.execute("SELECT COUNT(*) FROM usage").fetchone()[0],
                "outbox_backlog": self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
                "next_event_seq": self._count(self._db, "next_seq", 1),
                "acked_event_seq": self._count(self._db, "acked_seq", 0),
            }

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @classmethod
    def open_read_only(cls, directory: Path) -> "GateStore":
        """The state of a gate that may be running, for diagnostics (``lungta gate state``).

        SQLite's read-only mode: nothing is created, migrated or written, so a
        technician looking never disturbs the daemon; WAL lets the read see
        the daemon's last commit while it keeps writing.
        """
        path = directory / cls.FILENAME
        if not path.is_file():
            raise StateError(f"{directory}: no gate state here (expected {cls.FILENAME})")
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            connection.execute("SELECT COUNT(*) FROM meta").fetchone()
            return cls(connection, path)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: cannot read gate state: {exc}") from None


@dataclass(frozen=True)
class OpenAdmission:
    """An admission committed but not yet settled by the turnstile: see Validator.recover_open_admissions.

    ``pulsed`` is set (durably) just before the relay is commanded, so after a
    crash an admission that never opened anything is told apart from one a
    visitor may have walked through.
    """

    seq: int
    ticket_id: bytes
    zone: str
    day: str
    minute: int
    persons: int
    direction: str
    expires: int
    pulsed: bool
