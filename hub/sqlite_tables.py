"""What every group of the hub's SQLite tables shares: the connection, the transaction, the error.

``SqliteHubStore`` (hub/sqlite_store.py) is made of one class per subject
(events, outbox, health, quotas: hub/sqlite_*.py), each a group of tables and
the methods that own them, over the one connection this base declares.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager


class HubStoreError(Exception):
    """The hub database cannot be used as it is; names the file."""


class Tables:
    """The connection and the store's transaction, as each group of tables sees them."""

    _db: sqlite3.Connection
    transaction: Callable[[], AbstractContextManager[None]]  # one IMMEDIATE transaction, nested calls join it: SqliteHubStore's
