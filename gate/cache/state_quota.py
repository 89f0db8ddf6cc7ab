"""Quota leases in the gate's state, mirrored in memory (gate/cache/state.py; docs/quotas.md)."""

from __future__ import annotations

import sqlite3
from datetime import date

from protocol.gate_messages import LeaseReport

from .state_meta import MetaTables


class QuotaTables(MetaTables):
    """Table quota_lease; ``_leases`` maps (day, slot_start) to [slot_end, granted, used, expires_ms]."""

    _leases: dict[tuple[str, int], list[int]]

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
