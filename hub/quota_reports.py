"""What gates tell the hub of their quota leases: admissions counted against them, and heartbeats.

Turns decoded gate messages (protocol/gate_messages.py: the wire format and its
bounds) into the values the allocation works on (hub/quota.py). A slot day that
is not a real date is dropped and logged here, so the allocation never sees one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from protocol.gate_messages import EventKind, GateEvent, HealthReport

from .ingest import TicketFacts
from .quota import GateReport, Quota, QuotaError, QuotaUse, SlotReport
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


def unleased_use(event: GateEvent, ticket: TicketFacts | None, quotas_of: Callable[[str], Sequence[Quota]], zone: ZoneInfo) -> QuotaUse | None:
    """An admission no lease counted, placed in the capped slot its time falls in (site time); None outside every slot.

    A gate without a lease covering the minute treats the slot as uncapped
    and its event carries no ``quota`` (a quota set while it was cut off, a
    new state before its leases came). Those persons are still in the
    slot: the hub counts them there, so the cap sees everyone admitted, and
    says so. Persons are bounded by the verified ``ticket``'s, when known;
    ``quotas_of(day)`` gives the capped slots of a day.
    """
    if event.kind is not EventKind.ADMISSION or event.data.quota is not None:
        return None
    persons = event.data.persons or 1
    persons = min(persons, ticket.persons) if ticket is not None else persons
    local = datetime.fromtimestamp(event.at_ms / 1000, zone)
    day, minute = local.date().isoformat(), local.hour * 60 + local.minute
    quota = next((quota for quota in quotas_of(day) if quota.slot_start <= minute < quota.slot_end), None)
    if quota is None or persons <= 0:
        return None
    log.warning("gate %s admitted %d person(s) (seq %d) in slot %s %s under no lease: counted in the slot, over its leases", event.gate, persons, event.seq, day, quota.slot)
    return QuotaUse(event.gate, day, quota.slot_start, event.at_ms, persons, leased=False)


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
