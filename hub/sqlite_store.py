"""The hub store in one SQLite file: WAL, one writer connection per process.

Durability: ``synchronous=FULL`` (the default) fsyncs the WAL at every commit,
so an event the hub has acknowledged survives a power cut; the gate prunes on
that acknowledgement, so NORMAL (which may lose the last commits on power
loss, though never corrupts) would turn a power cut into lost events. The
ingest batches many events per transaction, which is what makes FULL cheap
enough (see bench/bench_hub.py). Other processes (the ``lungta hub revoke``
CLI) write through their own connection; ``busy_timeout`` serialises them.

This module holds the schema, opening and transactions; the tables of each
subject and their methods are in hub/sqlite_events.py, sqlite_outbox.py,
sqlite_health.py and sqlite_quotas.py, combined here into one store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .sqlite_health import HealthTables
from .sqlite_quotas import QuotaTables
from .sqlite_tables import HubStoreError

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
    body BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0, open INTEGER NOT NULL DEFAULT 0, UNIQUE (stream, seq)  -- open: entries in a revocation delta still joinable
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (row_id) WHERE published = 0;
CREATE TABLE IF NOT EXISTS revocations (
    ticket_id BLOB PRIMARY KEY, expires INTEGER NOT NULL, reason TEXT, seq INTEGER NOT NULL, recorded_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_by_seq ON revocations (seq);
CREATE TABLE IF NOT EXISTS used_marks (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL, expires INTEGER, mark BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS gates (
    gate TEXT PRIMARY KEY, online INTEGER NOT NULL, bdseq INTEGER, last_seen_ms INTEGER NOT NULL,
    born_ms INTEGER, died_ms INTEGER, birth BLOB, heartbeat BLOB, incarnation BLOB,
    resets INTEGER NOT NULL DEFAULT 0, reset_ms INTEGER, refused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hub_liveness (
    id INTEGER PRIMARY KEY CHECK (id = 1), seen_ms INTEGER NOT NULL, running INTEGER NOT NULL, broker_up INTEGER NOT NULL, broker_since_ms INTEGER NOT NULL
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
SCHEMA_VERSION = 2  # wire format 2: events keyed by (gate, incarnation, seq)


class SqliteHubStore(HealthTables, QuotaTables):
    """``HubStore`` on SQLite. Not thread-safe: one instance per thread."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise HubStoreError(f"{path}: cannot open: {error}") from None
        try:
            self._open_schema(path, synchronous)
        except (sqlite3.Error, HubStoreError) as error:
            self._db.close()  # a folder, not SQLite, locked, read-only: one line naming the file, nothing left open
            raise error if isinstance(error, HubStoreError) else HubStoreError(f"{path}: {error}") from None
        self._depth = 0
        self._forget_streams()
        self._data_version = self._version()

    def _open_schema(self, path: Path, synchronous: str) -> None:
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION) or (version == 0 and self._has_table("events")):
            raise HubStoreError(f"{path}: made by an older Lungta hub (schema {version}, this one needs {SCHEMA_VERSION}); move it aside to start a new one")
        self._db.executescript(SCHEMA)
        self._add_column("quota_gates", "unleased", "INTEGER NOT NULL DEFAULT 0")  # a hub before it counted unleased admissions
        self._add_column("outbox", "open", "INTEGER NOT NULL DEFAULT 0")  # a hub before it coalesced revocations
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_open ON outbox (stream) WHERE open > 0")
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
            self._forget_streams()  # the cache may hold what was rolled back
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _add_column(self, table: str, column: str, declaration: str) -> None:
        """Bring a database of an earlier hub of the same schema version up to date."""
        if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

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
