"""Quota caps, the leases sent for them and what gates used: the ledger of hub/quota.py (hub/sqlite_store.py)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from protocol.hub_messages import QuotaLease, lease_body
from protocol.topics import quota_stream

from .quota import GateReport, GateSlot, LeaseGrant, Quota, QuotaUse, SentLease, SlotReport
from .sqlite_outbox import OutboxTables
from .store import OutboxRow

log = logging.getLogger(__name__)

RECENT_BUCKET_MS = 10_000  # granularity of a gate's recent demand (hub.quota.GateSlot.recent)


class QuotaTables(OutboxTables):
    """Tables quotas, quota_leases, quota_gates, quota_recent; a lease is an outbox message too."""

    def set_quota(self, quota: Quota, at_ms: int) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO quotas VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, slot_start) DO UPDATE SET slot_end = excluded.slot_end, cap = excluded.cap, set_ms = excluded.set_ms",
                (quota.day, quota.slot_start, quota.slot_end, quota.cap, at_ms),
            )

    def quotas(self, first_day: str | None = None, last_day: str | None = None) -> list[Quota]:
        rows = self._db.execute(
            "SELECT day, slot_start, slot_end, cap FROM quotas WHERE day >= ? AND day <= ? ORDER BY day, slot_start", (first_day or "", last_day or "9999-12-31")
        )
        return [Quota(*row) for row in rows]

    def _lease_room(self, key: tuple[str, int, str]) -> int:
        """Persons the gate may still count in the slot: the largest lease it was sent minus what it counted."""
        row = self._db.execute(
            "SELECT coalesce((SELECT max(granted) FROM quota_leases WHERE day = ? AND slot_start = ? AND gate = ?), 0)"
            " - coalesce((SELECT admitted FROM quota_gates WHERE day = ? AND slot_start = ? AND gate = ?), 0)", key + key
        ).fetchone()
        return max(0, row[0])

    def add_quota_uses(self, uses: Sequence[QuotaUse]) -> None:
        """Count persons, each gate bounded by the leases it holds: a gate claiming 2^31 persons cannot starve the slot.

        A use under no lease (``leased`` False) is counted apart, bounded only by its verified ticket's persons.
        """
        totals: Counter[tuple[str, int, str]] = Counter()
        unleased: Counter[tuple[str, int, str]] = Counter()
        buckets: Counter[tuple[str, int, str, int]] = Counter()
        room: dict[tuple[str, int, str], int] = {}
        for use in uses:
            key = (use.day, use.slot_start, use.gate)
            if not use.leased:
                unleased[key] += use.persons
                buckets[use.day, use.slot_start, use.gate, use.at_ms // RECENT_BUCKET_MS] += use.persons
                continue
            if key not in room:
                room[key] = self._lease_room(key)
            persons = min(use.persons, room[key] - totals[key])
            if persons < use.persons:
                log.warning("gate %s counted %d person(s) in slot %s %d beyond the leases it holds; %d counted", use.gate, use.persons, use.day, use.slot_start, max(0, persons))
                persons = max(0, persons)
            totals[key] += persons
            buckets[use.day, use.slot_start, use.gate, use.at_ms // RECENT_BUCKET_MS] += persons
        with self.transaction():
            self._db.executemany(
                "INSERT INTO quota_gates (day, slot_start, gate, admitted) VALUES (?, ?, ?, ?) ON CONFLICT (day, slot_start, gate) DO UPDATE SET admitted = admitted + excluded.admitted",
                [(*key, persons) for key, persons in totals.items()],
            )
            self._db.executemany(
                "INSERT INTO quota_gates (day, slot_start, gate, unleased) VALUES (?, ?, ?, ?) ON CONFLICT (day, slot_start, gate) DO UPDATE SET unleased = unleased + excluded.unleased",
                [(*key, persons) for key, persons in unleased.items()],
            )
            self._db.executemany(
                "INSERT INTO quota_recent VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, slot_start, gate, bucket) DO UPDATE SET persons = persons + excluded.persons",
                [(*key, persons) for key, persons in buckets.items()],
            )

    def save_quota_reports(self, gate: str, reports: Sequence[SlotReport]) -> None:
        with self.transaction():
            for item in reports:
                key = (item.day, item.slot_start, gate)
                report = item.report
                self._db.execute(
                    "INSERT INTO quota_gates (day, slot_start, gate, report_at, report_lease, report_used) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (day, slot_start, gate) DO UPDATE SET report_at = excluded.report_at, report_lease = excluded.report_lease, report_used = excluded.report_used"
                    " WHERE report_at IS NULL OR excluded.report_at > report_at",
                    (*key, report.at_ms, report.lease_id, report.used),
                )
                self._db.execute(
                    "DELETE FROM quota_leases WHERE day = ? AND slot_start = ? AND gate = ?"
                    " AND lease_id < (SELECT report_lease FROM quota_gates WHERE day = ? AND slot_start = ? AND gate = ?)",
                    key + key,
                )

    def quota_ledger(self, day: str, slot_start: int, recent_since_ms: int) -> list[GateSlot]:
        with self.transaction():  # one read snapshot
            slot = (day, slot_start)
            leases: dict[str, list[SentLease]] = {}
            for gate, *lease in self._db.execute(
                "SELECT gate, lease_id, granted, expires_ms, issued_ms FROM quota_leases WHERE day = ? AND slot_start = ? ORDER BY gate, lease_id", slot
            ):
                leases.setdefault(gate, []).append(SentLease(*lease))
            recent = dict(self._db.execute(
                "SELECT gate, sum(persons) FROM quota_recent WHERE day = ? AND slot_start = ? AND bucket >= ? GROUP BY gate", (*slot, recent_since_ms // RECENT_BUCKET_MS)
            ))
            known = self._db.execute("SELECT gate, admitted, report_at, report_lease, report_used, unleased FROM quota_gates WHERE day = ? AND slot_start = ?", slot).fetchall()
        gates = {gate: GateSlot(gate, admitted=admitted, report=None if at is None else GateReport(at, lease_id, used), unleased=unleased)
                 for gate, admitted, at, lease_id, used, unleased in known}
        for gate in leases.keys() - gates.keys():
            gates[gate] = GateSlot(gate)
        return [replace(gates[gate], leases=tuple(leases.get(gate, ())), recent=recent.get(gate, 0)) for gate in sorted(gates)]

    def add_leases(self, quota: Quota, grants: Sequence[LeaseGrant], at_ms: int) -> list[OutboxRow]:
        rows = []
        with self.transaction():
            for grant in grants:
                stream = quota_stream(grant.gate)
                lease_id = self._reserve(stream, 1)
                lease = QuotaLease(quota.day, quota.slot_start, quota.slot_end, grant.granted, lease_id, grant.expires_ms)
                self._db.execute("INSERT INTO quota_leases VALUES (?, ?, ?, ?, ?, ?, ?)", (quota.day, quota.slot_start, grant.gate, lease_id, grant.granted, grant.expires_ms, at_ms))
                rows.append(self._insert_row(stream, lease_id, at_ms, lease_body(lease)))
        return rows
