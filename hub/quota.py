"""Time-slot quotas: how the hub shares a slot's cap among gates so that it holds even when they are cut off.

Pure: no I/O and no clock of its own. The hub's worker hands ``allocate`` what
the store knows of one slot and the hub time; it answers with the leases to
send. docs/quotas.md explains the algorithm; the guarantee rests on ``held``.

The operator's text (days, slots, caps, the rows of ``quota list``/``show``)
is hub/quota_text.py; what gates report of their leases is hub/quota_reports.py.

The gate's rule (gate/cache/state.py) makes a bound possible: it admits
only while ``used + persons <= granted`` and its lease clock is before
``expires_ms``, keeps the lease with the highest ``lease_id``, and its lease
clock does not go back (by more than the skew margin). So after a heartbeat
"at ``at`` I held lease ``k`` and had used ``U``", the gate's eventual total
is at most ``max(U, granted of the leases >= k expiring after at)``. The hub
sends a lease only while these bounds sum to at most the cap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from protocol.claims import TimeSlot


MAX_CAP = 2**31


class QuotaError(ValueError):
    """A day, slot or cap the operator gave cannot be used; the message names it."""


@dataclass(frozen=True)
class Quota:
    """The cap of one slot of one day (local time of the site), in persons."""

    day: str
    slot_start: int
    slot_end: int
    cap: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.day, self.slot_start)

    @property
    def slot(self) -> str:
        return str(TimeSlot(self.slot_start, self.slot_end))


@dataclass(frozen=True)
class SentLease:
    """A lease the hub recorded for a gate (it may still be queued at the broker)."""

    lease_id: int
    granted: int
    expires_ms: int
    issued_ms: int


@dataclass(frozen=True)
class GateReport:
    """What a heartbeat says of one slot: at gate time ``at_ms`` the gate held ``lease_id`` and had used ``used``."""

    at_ms: int
    lease_id: int
    used: int


@dataclass(frozen=True)
class SlotReport:
    day: str
    slot_start: int
    report: GateReport


@dataclass(frozen=True)
class QuotaUse:
    """Persons an admission (positive) or rollback (negative) counted against a gate's lease.

    ``leased`` False: an admission no lease of the gate covered (``unleased_use``),
    counted in the slot but apart from the lease counts.
    """

    gate: str
    day: str
    slot_start: int
    at_ms: int
    persons: int
    leased: bool = True


@dataclass(frozen=True)
class GateSlot:
    """The hub's knowledge of one gate in one slot.

    ``admitted`` is the net persons of the gate's quota events the hub has
    stored; ``recent`` the persons of those dated within the last rate window
    (the gate's demand); ``report`` the newest heartbeat about the slot;
    ``unleased`` the persons it admitted in the slot under no lease, which
    its lease counter never saw (so they are added to, not compared with, it).
    """

    gate: str
    online: bool = False
    leases: tuple[SentLease, ...] = ()
    admitted: int = 0
    recent: int = 0
    report: GateReport | None = None
    unleased: int = 0


@dataclass(frozen=True)
class QuotaPolicy:
    """``lease_ms``: how long a lease lets a cut-off gate go on; ``skew_ms``: margin on gate clocks."""

    lease_ms: int
    skew_ms: int

    @property
    def renew_ms(self) -> int:
        """A lease older than this is renewed, so an online gate never runs on an expiring one."""
        return self.lease_ms // 3


@dataclass(frozen=True)
class LeaseGrant:
    """A lease to record and send; the store gives it its ``lease_id`` (the seq of quota/<gate>)."""

    gate: str
    granted: int
    expires_ms: int


def overlapping(quota: Quota, existing: Iterable[Quota]) -> Quota | None:
    """Another slot of the same day that overlaps ``quota`` (the same slot is a cap change, not an overlap).

    A gate finds the lease for an admission by the minute of the day, so two
    overlapping slots would make it count the admission against either one.
    """
    for other in existing:
        same = (other.slot_start, other.slot_end) == (quota.slot_start, quota.slot_end)
        if other.day == quota.day and not same and other.slot_start < quota.slot_end and quota.slot_start < other.slot_end:
            return other
    return None


def slot_window_ms(quota: Quota, zone: ZoneInfo) -> tuple[int, int]:
    """Hub time (Unix ms) at which the slot starts and ends, in the site's time zone."""
    midnight = datetime.combine(date.fromisoformat(quota.day), datetime.min.time(), zone)

    def unix_ms(minute: int) -> int:  # wall-clock arithmetic: 09:00 stays 09:00 on a day the clocks change
        return int((midnight + timedelta(minutes=minute)).timestamp() * 1000)

    return unix_ms(quota.slot_start), unix_ms(quota.slot_end)


def record_report(slot: GateSlot, report: GateReport) -> GateSlot:
    """Keep the newest report (by gate time) and forget the leases the gate has replaced.

    Heartbeats can arrive out of order across reconnects; the gate's clock
    and lease id only go forward, so the report with the latest ``at`` says
    the most. A lease below the one the gate holds can never be used again.
    """
    if slot.report is not None and slot.report.at_ms >= report.at_ms:
        return slot
    return replace(slot, report=report, leases=tuple(lease for lease in slot.leases if lease.lease_id >= report.lease_id))


# ---- the bound ---------------------------------------------------------------------------


def leased_used(slot: GateSlot) -> int:
    """What the gate is known to have counted against its leases: its events or its last report, whichever says more."""
    return max(slot.admitted, slot.report.used if slot.report else 0, 0)


def used(slot: GateSlot) -> int:
    """What the gate is known to have admitted in the slot: under its leases and under none."""
    return leased_used(slot) + slot.unleased


def live_leases(slot: GateSlot, skew_ms: int) -> list[SentLease]:
    """The leases the gate may still admit against, as far as the hub can rule out.

    Without a report, every lease sent (it may be in flight or queued); with
    one, those not yet replaced and not expired by its ``at`` less
    ``skew_ms``. The hub's own clock plays no part: a lease past its expiry
    still bounds a gate that has not said how much of it it used.
    """
    if slot.report is None:
        return list(slot.leases)
    report = slot.report
    return [lease for lease in slot.leases if lease.lease_id >= report.lease_id and lease.expires_ms > report.at_ms - skew_ms]


def lease_bound(slot: GateSlot, skew_ms: int) -> int:
    """An upper bound of what the gate's lease counter will ever reach in the slot."""
    return max([leased_used(slot)] + [lease.granted for lease in live_leases(slot, skew_ms)])


def held(slot: GateSlot, skew_ms: int) -> int:
    """An upper bound of all the gate will ever admit in the slot: the figure counted against the cap."""
    return slot.unleased + lease_bound(slot, skew_ms)


def newest(slot: GateSlot) -> SentLease | None:
    return max(slot.leases, key=lambda lease: lease.lease_id, default=None)


def headroom(slot: GateSlot, now_ms: int) -> int:
    """Places the gate can still use under the newest lease, as the hub knows it (0 once that lease expired)."""
    lease = newest(slot)
    if lease is None or lease.expires_ms <= now_ms:
        return 0
    return max(0, lease.granted - leased_used(slot))


# ---- allocation --------------------------------------------------------------------------


def targets(online: Sequence[GateSlot], pool: int) -> dict[str, int]:
    """The headroom each online gate should have: half the pool, split by recent demand.

    Half stays with the hub for whichever gate runs low next; by demand, so
    an idle gate does not sit on places a busy one needs. Every gate weighs at
    least a quarter of an even share, and gets at least 1 while places remain.
    """
    if pool <= 0 or not online:
        return {slot.gate: 0 for slot in online}
    total = sum(max(0, slot.recent) for slot in online)
    base = max(total, 1) / (4 * len(online))
    weight = total + base * len(online)
    return {slot.gate: max(1, math.floor(pool * (max(0, slot.recent) + base) / (2 * weight))) for slot in online}


def _reissue(slot: GateSlot, target: int, room: int, free: int, now_ms: int, policy: QuotaPolicy) -> LeaseGrant | None:
    """The lease to send an online gate, or None: renew when due, top up when low, lower when far above target.

    The new ``granted`` is ``used + target`` (in the units of the gate's lease
    counter), but never more than its lease bound plus the free places:
    sending it adds at most ``free`` to the sum.
    """
    lease = newest(slot)
    due = lease is None or lease.expires_ms - now_ms <= policy.lease_ms - policy.renew_ms
    low = 2 * room < target
    high = room > 2 * target + 1
    if not (due or low or high):
        return None
    granted = min(leased_used(slot) + target, lease_bound(slot, policy.skew_ms) + max(0, free))
    if not due and lease is not None and granted == lease.granted:
        return None
    return LeaseGrant(slot.gate, granted, now_ms + policy.lease_ms)


def allocate(quota: Quota, window: tuple[int, int], gates: Sequence[GateSlot], now_ms: int, policy: QuotaPolicy) -> list[LeaseGrant]:
    """The leases to send now for ``quota`` (slot from ``window[0]`` to ``window[1]``, hub ms).

    Every gate that has none gets one (granted 0 unless it is online while
    the slot is open), since a gate without a lease treats the slot as
    uncapped. Online gates are served from a lease length before the slot
    starts until it ends; offline gates get nothing more, so what they hold
    stays bounded. Invariant: after these leases, the sum of ``held`` over
    all gates is at most the cap, or no higher than before when the operator
    lowered the cap below it.
    """
    opens_ms, closes_ms = window
    active = opens_ms - policy.lease_ms <= now_ms < closes_ms
    online = [slot for slot in gates if slot.online] if active else []
    served = {slot.gate for slot in online}
    grants = [LeaseGrant(slot.gate, 0, now_ms + policy.lease_ms) for slot in gates if not slot.leases and slot.gate not in served]
    free = quota.cap - sum(held(slot, policy.skew_ms) for slot in gates)
    room = {slot.gate: headroom(slot, now_ms) for slot in online}
    goal = targets(online, free + sum(room.values()))
    for slot in sorted(online, key=lambda slot: room[slot.gate] / max(1, goal[slot.gate])):
        grant = _reissue(slot, goal[slot.gate], room[slot.gate], free, now_ms, policy)
        if grant is not None:
            free -= max(0, grant.granted - lease_bound(slot, policy.skew_ms))
            grants.append(grant)
    return grants
