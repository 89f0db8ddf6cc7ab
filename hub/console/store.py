"""The console's tables, in the hub's own SQLite file, beside the hub's.

Same file, not a sibling: an action and its audit entry (and its
idempotency record) must commit in ONE transaction with the outbox row the
hub will publish, so no revocation reaches gates unaudited and no retry
revokes twice. ``ConsoleStore`` is a ``SqliteHubStore`` (same connection,
same ``transaction()``) plus the console's own tables, all prefixed
``console_``; like its base it is used by one thread at a time (the HTTP
server keeps a pool, ``StorePool``).
"""

from __future__ import annotations

import json
import queue
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..sqlite_store import SqliteHubStore
from ..sqlite_tables import HubStoreError
from .audit import GENESIS, AuditEntry, entry_hash
from .roles import Principal, Role

CONSOLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_accounts (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS console_credentials (
    hash TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
    created_ms INTEGER NOT NULL, expires_ms INTEGER
);
CREATE TABLE IF NOT EXISTS console_audit (
    seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, via TEXT NOT NULL,
    origin TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_idempotency (
    key TEXT PRIMARY KEY, actor TEXT NOT NULL, request TEXT NOT NULL, status INTEGER NOT NULL, response TEXT NOT NULL, at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS console_revocation_log (
    id INTEGER PRIMARY KEY, ticket_id BLOB NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
    actor TEXT NOT NULL, at_ms INTEGER NOT NULL, audit_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS console_revocation_log_by_ticket ON console_revocation_log (ticket_id);
CREATE TABLE IF NOT EXISTS console_alert_acks (alert_id TEXT PRIMARY KEY, actor TEXT NOT NULL, at_ms INTEGER NOT NULL);
"""


class ConsoleStore(SqliteHubStore):
    """The hub store plus accounts, credentials, audit, idempotency keys, revocation log and alert acks."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        super().__init__(path, synchronous)
        try:
            self._db.executescript(CONSOLE_SCHEMA)
        except sqlite3.Error as error:
            self.close()
            raise HubStoreError(f"{path}: {error}") from None

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """One consistent read of the hub's and console's tables WITHOUT the write lock.

        ``transaction()`` begins IMMEDIATE (the hub's writes need that); a reader
        taking it would queue behind every ingest commit (and its fsync) and
        make the ingest queue behind it. In WAL mode a deferred transaction
        reads a snapshot and never blocks the writer. Store methods called
        inside (``quota_ledger``) see an open transaction and nest into it.
        """
        if self._depth:
            yield
            return
        self._db.execute("BEGIN DEFERRED")
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._db.execute("COMMIT")

    @property
    def db(self) -> sqlite3.Connection:
        """For ``hub.console.queries``: read-only SQL over the hub's and the console's tables."""
        return self._db

    # ---- accounts and credentials ----

    def add_account(self, name: str, role: Role, password_hash: str, at_ms: int) -> bool:
        """False when the name is taken (accounts are never silently replaced)."""
        cursor = self._db.execute("INSERT OR IGNORE INTO console_accounts VALUES (?, ?, ?, ?)", (name, role.value, password_hash, at_ms))
        return cursor.rowcount == 1

    def account(self, name: str) -> tuple[Role, str] | None:
        row = self._db.execute("SELECT role, password FROM console_accounts WHERE name = ?", (name,)).fetchone()
        return None if row is None else (Role(row[0]), row[1])

    def accounts(self) -> list[dict]:
        rows = self._db.execute("SELECT name, role, created_ms FROM console_accounts ORDER BY name")
        return [{"name": name, "role": role, "created_ms": created} for name, role, created in rows]

    def add_credential(self, digest: str, kind: str, name: str, role: Role, at_ms: int, expires_ms: int | None) -> None:
        self._db.execute("INSERT INTO console_credentials VALUES (?, ?, ?, ?, ?, ?)", (digest, kind, name, role.value, at_ms, expires_ms))

    def credential(self, digest: str, now_ms: int) -> tuple[str, str, Role] | None:
        """(kind, name, role) of an unexpired credential with this hash."""
        row = self._db.execute(
            "SELECT kind, name, role FROM console_credentials WHERE hash = ? AND (expires_ms IS NULL OR expires_ms > ?)", (digest, now_ms)
        ).fetchone()
        return None if row is None else (row[0], row[1], Role(row[2]))

    def drop_credential(self, digest: str) -> None:
        self._db.execute("DELETE FROM console_credentials WHERE hash = ?", (digest,))

    def remove_account(self, name: str) -> bool:
        """Drop an account and end its sessions at once (not at their expiry); False when there is none."""
        removed = self._db.execute("DELETE FROM console_accounts WHERE name = ?", (name,)).rowcount
        self._db.execute("DELETE FROM console_credentials WHERE kind = 'session' AND name = ?", (name,))
        return removed == 1

    def revoke_tokens(self, name: str) -> int:
        """Drop every API token of this name: the next request with one is 401."""
        return self._db.execute("DELETE FROM console_credentials WHERE kind = 'token' AND name = ?", (name,)).rowcount

    def tokens(self) -> list[dict]:
        rows = self._db.execute("SELECT name, role, created_ms FROM console_credentials WHERE kind = 'token' ORDER BY created_ms")
        return [{"name": name, "role": role, "created_ms": created} for name, role, created in rows]

    # ---- audit ----

    def append_audit(self, who: Principal, action: str, detail: dict, at_ms: int) -> AuditEntry:
        """Chain a new entry to the last one; call inside ``transaction()`` with the action itself."""
        with self.transaction():
            last = self._db.execute("SELECT seq, hash FROM console_audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            digest = entry_hash(prev, seq, at_ms, who.name, who.role.value, who.kind, who.origin, action, detail)
            self._db.execute(
                "INSERT INTO console_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at_ms, who.name, who.role.value, who.kind, who.origin, action, json.dumps(detail, sort_keys=True, ensure_ascii=False), prev, digest),
            )
        return AuditEntry(seq, at_ms, who.name, who.role.value, who.kind, who.origin, action, detail, prev, digest)

    def audit_entries(self, after_seq: int = 0, limit: int | None = None, newest_first: bool = False) -> Iterator[AuditEntry]:
        order = "DESC" if newest_first else "ASC"
        where = "seq < ?" if newest_first and after_seq else "seq > ?"
        sql = f"SELECT * FROM console_audit WHERE {where} ORDER BY seq {order}" + (" LIMIT ?" if limit else "")
        params = (after_seq, limit) if limit else (after_seq,)
        for seq, at_ms, actor, role, via, origin, action, detail, prev, digest in self._db.execute(sql, params):
            yield AuditEntry(seq, at_ms, actor, role, via, origin, action, json.loads(detail), prev, digest)

    # ---- idempotency ----

    def idempotent_response(self, key: str) -> tuple[str, str, int, dict] | None:
        """(actor, request fingerprint, status, response) recorded for ``key``."""
        row = self._db.execute("SELECT actor, request, status, response FROM console_idempotency WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], json.loads(row[3]))

    def save_idempotent_response(self, key: str, actor: str, request: str, status: int, response: dict, at_ms: int) -> None:
        self._db.execute("INSERT INTO console_idempotency VALUES (?, ?, ?, ?, ?, ?)", (key, actor, request, status, json.dumps(response), at_ms))

    # ---- revocations: who and why, beside the hub's table ----

    def log_revocations(self, ticket_ids: list[bytes], action: str, reason: str, actor: str, at_ms: int, audit_seq: int) -> None:
        self._db.executemany(
            "INSERT INTO console_revocation_log (ticket_id, action, reason, actor, at_ms, audit_seq) VALUES (?, ?, ?, ?, ?, ?)",
            [(ticket_id, action, reason, actor, at_ms, audit_seq) for ticket_id in ticket_ids],
        )

    def forget_revocations(self, ticket_ids: list[bytes]) -> int:
        """Drop tickets from the hub's revocation set, so the next snapshot a gate takes no longer holds them."""
        cursor = self._db.executemany("DELETE FROM revocations WHERE ticket_id = ?", [(ticket_id,) for ticket_id in ticket_ids])
        return cursor.rowcount

    # ---- alerts ----

    def ack_alert(self, alert_id: str, actor: str, at_ms: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO console_alert_acks VALUES (?, ?, ?)", (alert_id, actor, at_ms))

    def alert_acks(self) -> dict[str, tuple[str, int]]:
        return {alert_id: (actor, at) for alert_id, actor, at in self._db.execute("SELECT alert_id, actor, at_ms FROM console_alert_acks")}


class StorePool:
    """A few ``ConsoleStore`` connections for the HTTP threads; each request borrows one."""

    def __init__(self, path: Path, synchronous: str, size: int = 4) -> None:
        self._free: queue.Queue[ConsoleStore] = queue.Queue()
        self._path, self._synchronous = path, synchronous
        for _ in range(size):
            self._free.put(ConsoleStore(path, synchronous))

    @contextmanager
    def borrow(self) -> Iterator[ConsoleStore]:
        store = self._free.get()
        try:
            yield store
        finally:
            self._free.put(store)

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()
