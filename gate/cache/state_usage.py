"""Ticket usage in the gate's state: this gate's own counters and other gates' marks (gate/cache/state.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date
from functools import partial

from ..rules import Usage
from .records import UsageCount
from .state_meta import MetaTables

USAGE_PRUNE_GRACE_SECONDS = 86_400  # a day past a ticket's expiry: clock skew between gates can never revive it


class UsageTables(MetaTables):
    """Table usage, mirrored in memory by the ids of tickets with usage that may still matter."""

    _used_ids: set[bytes]
    _ids_floor: int

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
