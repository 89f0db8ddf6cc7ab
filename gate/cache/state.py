"""The gate's durable state in one SQLite file: usage, event outbox, quota leases, meta.

One file and one transaction per decision, so an admission, the usage it
consumes and the event that reports it are committed together or not at all:
a power cut can lose a decision that was never acted on, never half of one.
WAL mode with ``synchronous=FULL`` makes each commit durable before
``record_*`` returns (the turnstile opens only after that); the measured cost
is in docs/BENCHMARKS.md and the reasons in docs/ARCHITECTURE.md.

Thread guarantees: one connection guarded by a lock; any thread may call any
method. Reads used by the engine are single indexed lookups. The records it
hands out are in gate/cache/records.py.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .private import create_private_file, make_private_dir
from .schema import INCARNATION_BYTES, INCARNATION_KEY, SCHEMA, CorruptState, StateError, check_meta, check_sqlite, migrate
from .state_outbox import OutboxTables
from .state_quota import QuotaTables
from .state_usage import USAGE_PRUNE_GRACE_SECONDS, UsageTables


class GateStore(UsageTables, QuotaTables, OutboxTables):
    """Open with ``GateStore.open(directory)``; the file is ``state.sqlite3`` inside it.

    The methods of each subject are in gate/cache/state_usage.py, state_quota.py,
    state_outbox.py and state_meta.py; this class opens the file, runs the
    transaction and keeps the incarnation."""

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


