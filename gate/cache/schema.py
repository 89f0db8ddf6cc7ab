"""The gate state's schema, its migrations and the checks run at start.

Kept apart from the store so ``state.py`` holds the operations and this the
shape: what a state must contain to be trusted (``check_*`` raise
CorruptState, which the daemon answers by quarantining, see quarantine.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    ticket_id BLOB NOT NULL, zone TEXT NOT NULL, day TEXT NOT NULL, gate TEXT NOT NULL,
    entries INTEGER NOT NULL DEFAULT 0, exits INTEGER NOT NULL DEFAULT 0, last_at INTEGER, expires INTEGER,
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
CREATE TABLE IF NOT EXISTS open_admission (
    seq INTEGER PRIMARY KEY, ticket_id BLOB NOT NULL, zone TEXT NOT NULL, day TEXT NOT NULL, minute INTEGER NOT NULL,
    persons INTEGER NOT NULL, direction TEXT NOT NULL, expires INTEGER NOT NULL, pulsed INTEGER NOT NULL DEFAULT 0
);
"""


TABLES = {
    "usage": {"ticket_id", "zone", "day", "gate", "entries", "exits", "last_at", "expires"},
    "outbox": {"seq", "event_id", "kind", "at_ms", "ticket_id", "data"},
    "quota_lease": {"day", "slot_start", "slot_end", "granted", "used", "lease_id", "expires_ms"},
    "meta": {"key", "value"},
    "open_admission": {"seq", "ticket_id", "zone", "day", "minute", "persons", "direction", "expires", "pulsed"},
}
INCARNATION_KEY = "incarnation"
INCARNATION_BYTES = 16


class StateError(Exception):
    """The state file cannot be opened or is not a Lungta gate state; names the file."""


class CorruptState(StateError):
    """The state is damaged (SQLite check, schema or meta); the daemon quarantines it."""


def migrate(db: sqlite3.Connection) -> None:
    """Bring a state made by an older version to this schema (idempotent)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(usage)")}
    if "expires" not in columns:
        db.execute("ALTER TABLE usage ADD COLUMN expires INTEGER")
    db.execute("CREATE INDEX IF NOT EXISTS usage_by_expiry ON usage(expires)")  # NULLs too: open loads those rows by it


def check_sqlite(db: sqlite3.Connection, path: Path) -> None:
    """SQLite's own page and index check; raises CorruptState naming the first problem."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise CorruptState(f"{path}: damaged: {' '.join('; '.join(problems).split())}")


def check_meta(db: sqlite3.Connection, path: Path) -> None:
    """Every table with its columns, and meta values of the right kind (raises CorruptState)."""
    for table, wanted in TABLES.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not wanted <= have:
            raise CorruptState(f"{path}: table {table} lacks {', '.join(sorted(wanted - have))}")
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('next_seq', 'acked_seq', 'clock_high_water', ?)", (INCARNATION_KEY,)))
    for key in ("next_seq", "acked_seq", "clock_high_water"):
        if key in meta and (type(meta[key]) is not int or meta[key] < 0):
            raise CorruptState(f"{path}: meta {key} is {meta[key]!r:.40}, not a count")
    incarnation = meta.get(INCARNATION_KEY)
    if incarnation is not None and (type(incarnation) is not bytes or len(incarnation) != INCARNATION_BYTES):
        raise CorruptState(f"{path}: incarnation id damaged")
    last = db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
    if last is not None and last >= meta.get("next_seq", 1):
        raise CorruptState(f"{path}: outbox holds seq {last} but the next seq is {meta.get('next_seq', 1)}")
