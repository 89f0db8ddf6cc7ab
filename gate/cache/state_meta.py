"""What every group of the gate state's tables shares: the connection, its lock, the transaction, and meta.

``GateStore`` (gate/cache/state.py) is made of one class per subject (usage,
quota leases, outbox: gate/cache/state_*.py) over the one connection declared
here; ``meta`` holds the counters and marks they all write (event seqs, stream
seqs, the clock's high water).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from .schema import CorruptState


class MetaTables:
    """Table meta, and what the other groups of tables use of the store."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    _after_commit: list[Callable[[], None]]  # applied to the in-memory mirrors after COMMIT only
    path: Path
    transaction: Callable[..., AbstractContextManager[sqlite3.Connection]]  # GateStore's: BEGIN IMMEDIATE under the lock

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
        value = MetaTables._meta(db, key, default)
        if type(value) is not int:
            raise CorruptState(f"meta {key} is {value!r:.40}, not a count")
        return value

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: object) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))
