"""What gates tell the hub of their quota leases: admissions counted against them, and heartbeats.

Turns decoded gate messages (protocol/gate_messages.py: the wire format and its
bounds) into the values the allocation works on (hub/quota.py). A slot day that
is not a real date is dropped and logged here, so the allocation never sees one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from protocol.gate_messages import GateEvent, HealthReport

from .quota import GateReport, QuotaError, QuotaUse, SlotReport
from .quota_text import parse_day

log = logging.getLogger(__name__)


def _day(value: object) -> str | None:
    try:
        return parse_day(value) if isinstance(value, str) else None
    except QuotaError:
        return None


def quota_use(event: GateEvent) -> QuotaUse | None:
    """The persons an event counted against a lease (``data.quota``), or None; a slot day that is no date is logged."""
    entry = event.data.quota
    if entry is None:
        return None
    if _day(entry.day) is None:
        log.warning("gate %s event seq %d has a quota entry for day %r; not counted", event.gate, event.seq, entry.day)
        return None
    return QuotaUse(event.gate, entry.day, entry.slot_start, event.at_ms, entry.persons)


def quota_uses(events: Iterable[GateEvent]) -> list[QuotaUse]:
    return [use for use in map(quota_use, events) if use is not None]


def slot_reports(gate: str, report: HealthReport) -> list[SlotReport]:
    """The leases a heartbeat lists, as slot reports at the heartbeat's ``at``.

    The time they were true at is the heartbeat's ``at``: the gate's lease
    clock (``ClockReading.lease_now``), the never-decreasing clock it checks
    lease expiry with, read before the leases. A heartbeat without ``at``
    says nothing usable.
    """
    if report.at_ms is None:
        return []
    return [SlotReport(lease.day, lease.slot_start, GateReport(report.at_ms, lease.lease_id, max(0, lease.used))) for lease in report.leases if _day(lease.day) is not None]
