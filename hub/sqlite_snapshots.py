"""A second connection to the hub database, for building snapshots beside the worker (hub/snapshot_builder.py).

Reading a million revocations takes seconds; on the worker's connection that
would stall every commit, ack and pong behind it. This connection reads each
snapshot in one deferred read transaction (WAL: the worker keeps committing
meanwhile, the read sees the state as of its first SELECT), and writes two
small things only: the seqs of the per-gate snapshot streams, and the close of
the open revocation delta (hub/sqlite_outbox.py), each in a transaction of its
own (``busy_timeout`` serialises them with the worker's and the CLI's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .sqlite_outbox import OutboxTables
from .sqlite_tables import HubStoreError

BUSY_TIMEOUT_MS = 10_000


class SqliteSnapshotReader(OutboxTables):
    """``revocation_snapshot``, ``used_snapshot`` and ``next_seq`` over a connection of their own; one thread at a time.

    Opened after the hub's store made the schema: a database without it is
    refused with one line naming the file.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise HubStoreError(f"{path}: cannot open for snapshots: {error}") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("SELECT 1 FROM revocations, used_marks, stream_seq LIMIT 0")
        except sqlite3.Error as error:
            self._db.close()
            raise HubStoreError(f"{path}: cannot open for snapshots: {error}") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write of this connection (a seq reservation, a delta closed), in an IMMEDIATE transaction of its own."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def interrupt(self) -> None:
        """Abort the query running now (from another thread): a hub stopping does not wait for a long read."""
        self._db.interrupt()

    def close(self) -> None:
        self._db.close()

