"""The quota allocator: its bound, its leases, and a simulated site with partitions in virtual time."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from hub.quota import (
    GateReport,
    GateSlot,
    Quota,
    QuotaError,
    QuotaPolicy,
    SentLease,
    allocate,
    held,
    overlapping,
    record_report,
    slot_window_ms,
    targets,
    used,
)
from hub.quota_reports import quota_uses, slot_reports, unleased_use
from hub.quota_text import parse_day, parse_slot
from hub.ingest import TicketFacts
from protocol.gate_messages import EventData, EventKind, GateEvent, LeaseReport, decode_event_data, decode_health, encode_health, lease_report_map
from protocol.messages import MalformedMessage

LEASE_MS, SKEW_MS = 120_000, 30_000
POLICY = QuotaPolicy(LEASE_MS, SKEW_MS)
QUOTA = Quota("2026-11-18", 9 * 60, 10 * 60, 500)
WINDOW = (1_000_000_000, 1_000_000_000 + 3_600_000)
OPEN = WINDOW[0]


def lease(lease_id: int, granted: int, expires_ms: int = OPEN + LEASE_MS) -> SentLease:
    return SentLease(lease_id, granted, expires_ms, expires_ms - LEASE_MS)


# ---- operator input --------------------------------------------------------------------------


def test_slot_and_day_are_parsed_strictly():
    assert parse_slot("09:00-10:00") == (540, 600) and parse_slot("23:00-24:00") == (1380, 1440)
    assert parse_day("2026-11-18") == "2026-11-18"
    for bad in ("10:00-09:00", "09:00-09:00", "9:00-10:00", "09:60-10:00", "24:00-24:30", "0900-1000", "09:00"):
        with pytest.raises(QuotaError):
            parse_slot(bad)
    for bad in ("2026-02-30", "20261118", "18/11/2026", ""):
        with pytest.raises(QuotaError):
            parse_day(bad)


def test_overlapping_slots_of_a_day_are_found_but_the_same_slot_is_a_cap_change():
    existing = [QUOTA, Quota("2026-11-19", 570, 630, 10)]
    assert overlapping(Quota("2026-11-18", 570, 630, 1), existing) == QUOTA
    assert overlapping(Quota("2026-11-18", 540, 600, 9), existing) is None
    assert overlapping(Quota("2026-11-18", 600, 660, 9), existing) is None


def test_slot_window_is_in_the_sites_time_zone():
    start, end = slot_window_ms(QUOTA, ZoneInfo("Asia/Shanghai"))
    assert start == int(datetime(2026, 11, 18, 1, 0, tzinfo=timezone.utc).timestamp() * 1000)
    assert end - start == 3_600_000
    assert slot_window_ms(replace(QUOTA, slot_end=1440), ZoneInfo("UTC"))[1] == int(datetime(2026, 11, 19, tzinfo=timezone.utc).timestamp() * 1000)


# ---- what gates report -----------------------------------------------------------------------


def test_quota_entries_of_events_and_heartbeats_are_read_and_bad_ones_skipped():
    good = GateEvent(b"\x01" * 16, "g1", b"i" * 16, 1, EventKind.ADMISSION, 5, b"t", decode_event_data({"quota": {"day": "2026-11-18", "slot_start": 540, "persons": 3}}))
    rollback = replace(good, seq=2, kind=EventKind.ROLLBACK, data=decode_event_data({"quota": {"day": "2026-11-18", "slot_start": 540, "persons": -3}}))
    bad = replace(good, seq=3, data=decode_event_data({"quota": {"day": "2026-19-18", "slot_start": 540, "persons": 1}}))
    assert [use.persons for use in quota_uses([good, rollback, bad, replace(good, data=EventData())])] == [3, -3]
    with pytest.raises(MalformedMessage):
        decode_event_data({"quota": {"day": "18.11.2026", "slot_start": 540, "persons": 1}})
    fields = {"bdseq": 1, "at": 7_000, "clock_offset_ms": 250, "quota": [lease_report_map(LeaseReport("2026-11-18", 540, 600, 10, 6, 4, 9_000))]}
    (report,) = slot_reports("g1", decode_health("heartbeat", encode_health(fields)))
    assert (report.day, report.slot_start, report.report) == ("2026-11-18", 540, GateReport(7_000, 4, 6)), "at is the gate's lease clock already"
    assert slot_reports("g1", decode_health("heartbeat", encode_health({**fields, "at": None}))) == []
    with pytest.raises(MalformedMessage):
        decode_health("heartbeat", encode_health({**fields, "quota": [["2026-11-18", 540, 600, 10, 6, 4, 9_000]]}))


def test_a_report_drops_the_leases_the_gate_replaced_and_an_older_report_changes_nothing():
    slot = GateSlot("g1", leases=(lease(1, 50), lease(2, 10), lease(3, 12)))
    newer = record_report(slot, GateReport(OPEN, 2, 8))
    assert [item.lease_id for item in newer.leases] == [2, 3]
    assert record_report(newer, GateReport(OPEN - 1, 1, 0)) == newer


# ---- the bound ---------------------------------------------------------------------------------


def test_a_lease_counts_until_a_report_after_its_expiry_says_what_was_used():
    expired = GateSlot("g1", leases=(lease(1, 40, OPEN),), admitted=3)
    assert held(expired, SKEW_MS) == 40, "expired, but the hub has not heard how much of it was used"
    assert held(record_report(expired, GateReport(OPEN + SKEW_MS - 1, 1, 25)), SKEW_MS) == 40, "inside the skew margin"
    assert held(record_report(expired, GateReport(OPEN + SKEW_MS, 1, 25)), SKEW_MS) == 25


def test_a_lowered_lease_counts_once_the_gate_confirms_it_holds_it():
    slot = GateSlot("g1", leases=(lease(1, 40), lease(2, 12)), admitted=10)
    assert held(slot, SKEW_MS) == 40
    assert held(record_report(slot, GateReport(OPEN, 2, 10)), SKEW_MS) == 12


def test_known_use_above_every_lease_is_counted():
    assert held(GateSlot("g1", leases=(lease(1, 5),), admitted=9), SKEW_MS) == 9


def test_an_admission_under_no_lease_is_placed_in_the_slot_its_time_falls_in():
    zone = ZoneInfo("Asia/Shanghai")
    at = int(datetime(2026, 11, 18, 9, 30, tzinfo=zone).timestamp() * 1000)
    quotas = {"2026-11-18": [Quota("2026-11-18", 0, 540, 9), QUOTA]}.get
    bare = GateEvent(b"\x01" * 16, "g1", b"i" * 16, 1, EventKind.ADMISSION, at, b"t" * 12, decode_event_data({"persons": 3}))
    use = unleased_use(bare, None, lambda day: quotas(day) or [], zone)
    assert (use.day, use.slot_start, use.persons, use.leased) == (QUOTA.day, QUOTA.slot_start, 3, False)
    assert unleased_use(bare, TicketFacts(b"t" * 12, 0, 2, 1, ()), lambda day: quotas(day) or [], zone).persons == 2, "bounded by the verified ticket"
    after_slot = replace(bare, at_ms=at + 3_600_000)
    leased = replace(bare, data=decode_event_data({"persons": 3, "quota": {"day": QUOTA.day, "slot_start": 540, "persons": 3}}))
    for event in (after_slot, leased, replace(bare, kind=EventKind.EXIT)):
        assert unleased_use(event, None, lambda day: quotas(day) or [], zone) is None


def test_persons_admitted_under_no_lease_count_against_the_cap_but_not_against_the_lease_counter():
    """A gate that admitted 4 under no lease, then leases: the 4 are in ``held``, and the leases it gets
    (counted from 0 by its lease counter) never let it past the cap however often it uses them up."""
    slot = GateSlot("g1", online=True, unleased=4)
    quota = replace(QUOTA, cap=10)
    now = OPEN
    for _ in range(20):
        (grant,) = allocate(quota, WINDOW, [slot], now, POLICY) or (None,)
        if grant is not None:
            slot = apply_grants([slot], [grant])[0]
        lease_counter = max(lease.granted for lease in slot.leases)  # the gate uses all it is granted
        slot = replace(slot, admitted=lease_counter)
        assert used(slot) <= quota.cap and held(slot, SKEW_MS) <= quota.cap
        now += LEASE_MS // 2
    assert used(slot) == quota.cap, "and the places left are still given out"


# ---- allocation ------------------------------------------------------------------------------


def total_held(gates: list[GateSlot]) -> int:
    return sum(held(slot, SKEW_MS) for slot in gates)


def apply_grants(gates: list[GateSlot], grants: list) -> list[GateSlot]:
    """The gates' ledgers once ``grants`` are recorded, as lease ids 100 + the gate's index."""
    by_gate = {grant.gate: grant for grant in grants}
    out = []
    for index, slot in enumerate(gates):
        grant = by_gate.get(slot.gate)
        if grant is not None:
            slot = replace(slot, leases=slot.leases + (SentLease(100 + index, grant.granted, grant.expires_ms, 0),))
        out.append(slot)
    return out


def test_every_gate_gets_a_lease_and_offline_or_early_ones_get_zero():
    gates = [GateSlot("g1", online=True), GateSlot("g2", online=False)]
    early = allocate(QUOTA, WINDOW, gates, OPEN - 10 * LEASE_MS, POLICY)
    assert [(grant.gate, grant.granted) for grant in early] == [("g1", 0), ("g2", 0)]
    grants = allocate(QUOTA, WINDOW, gates, OPEN, POLICY)
    assert {grant.gate: grant.granted for grant in grants} == {"g2": 0, "g1": 250}, "half the pool to the one online gate"


def test_even_demand_gets_even_shares_and_the_sum_never_passes_the_cap():
    gates = [GateSlot(f"g{n}", online=True) for n in range(8)]
    grants = allocate(QUOTA, WINDOW, gates, OPEN, POLICY)
    assert {grant.granted for grant in grants} == {31} and sum(grant.granted for grant in grants) <= QUOTA.cap


def test_a_busy_gate_gets_the_larger_share():
    shares = targets([GateSlot("busy", online=True, recent=90), *(GateSlot(f"idle{n}", online=True) for n in range(3))], 400)
    assert shares["busy"] > 150 and all(1 <= shares[f"idle{n}"] <= 10 for n in range(3))


def test_when_the_cap_is_all_out_an_idle_gate_is_lowered_and_nobody_raised():
    gates = [GateSlot("g1", online=True, leases=(lease(1, 300),), admitted=300), GateSlot("g2", online=True, leases=(lease(2, 200),), admitted=100)]
    grants = allocate(QUOTA, WINDOW, gates, OPEN + 1, POLICY)
    assert [(grant.gate, grant.granted) for grant in grants] == [("g2", 125)], "g2 sits on 100 places; g1 gets none until g2 confirms"
    assert total_held(apply_grants(gates, grants)) == QUOTA.cap
    confirmed = [gates[0], record_report(apply_grants(gates, grants)[1], GateReport(OPEN + 2, 101, 100))]
    assert total_held(confirmed) == 425
    assert [(grant.gate, grant.granted) for grant in allocate(QUOTA, WINDOW, confirmed, OPEN + 3, POLICY)] == [("g1", 325)]


def test_a_lowered_cap_gives_nobody_more_and_renewals_stop_at_what_was_used():
    gates = [GateSlot("g1", online=True, leases=(lease(1, 100),), admitted=60)]
    grants = allocate(replace(QUOTA, cap=50), WINDOW, gates, OPEN + LEASE_MS // 2, POLICY)
    assert [grant.granted for grant in grants] == [60]


# ---- a simulated site in virtual time ------------------------------------------------------------

STEP_MS = 1000
HEARTBEAT_MS = 10_000
DEATH_NOTICED_MS = 45_000  # a broker notices a silent gate after 1.5 keepalives


@dataclass
class ModelGate:
    """The gate's rule (gate/cache/state.py) in a few lines, with its side of a network that can be cut."""

    name: str
    rate: float
    lease_clock_offset_ms: int
    heartbeat_ahead_ms: int
    lease: tuple[int, int, int] | None = None  # lease_id, granted, expires_ms (hub time, checked on the gate's clock)
    used: int = 0
    up: bool = True
    down_since: int = 0
    down_until: int = 0
    inbox: list[tuple[int, int, int]] = field(default_factory=list)
    outbox: list[tuple[str, object]] = field(default_factory=list)
    rollbacks: list[tuple[int, int]] = field(default_factory=list)

    def receive(self, lease_id: int, granted: int, expires_ms: int) -> None:
        if self.lease is None or lease_id > self.lease[0]:
            self.lease = (lease_id, granted, expires_ms)

    def admit(self, persons: int, now_ms: int) -> bool | None:
        """True/False under a lease; None when the gate holds none (it would admit uncapped)."""
        if self.lease is None:
            return None
        clock = now_ms + self.lease_clock_offset_ms
        if self.used + persons > self.lease[1] or clock >= self.lease[2]:
            return False
        self.used += persons
        self.outbox.append(("use", (clock, persons)))
        return True

    def heartbeat(self, now_ms: int) -> None:
        if self.lease is not None:
            self.outbox.append(("report", GateReport(now_ms + self.lease_clock_offset_ms + self.heartbeat_ahead_ms, self.lease[0], self.used)))


class ModelHub:
    """The hub's side: the ledger the store keeps, and ``allocate`` run every step."""

    def __init__(self, names: list[str], quota: Quota) -> None:
        self.quota = quota
        self.ledger = {name: GateSlot(name) for name in names}
        self.recent: dict[str, deque[tuple[int, int]]] = {name: deque() for name in names}
        self.next_id = {name: 1 for name in names}

    def receive(self, gate: str, kind: str, item: object) -> None:
        slot = self.ledger[gate]
        if kind == "use":
            at, persons = item  # type: ignore[misc]
            self.recent[gate].append((at, persons))
            self.ledger[gate] = replace(slot, admitted=slot.admitted + persons)
        else:
            self.ledger[gate] = record_report(slot, item)  # type: ignore[arg-type]

    def run(self, now_ms: int, online: dict[str, bool]) -> list[tuple[str, int, int, int]]:
        for gate, recent in self.recent.items():
            while recent and recent[0][0] < now_ms - LEASE_MS:
                recent.popleft()
            self.ledger[gate] = replace(self.ledger[gate], online=online[gate], recent=sum(persons for _, persons in recent))
        sent = []
        for grant in allocate(self.quota, WINDOW, list(self.ledger.values()), now_ms, POLICY):
            lease_id = self.next_id[grant.gate]
            self.next_id[grant.gate] += 1
            slot = self.ledger[grant.gate]
            self.ledger[grant.gate] = replace(slot, leases=slot.leases + (SentLease(lease_id, grant.granted, grant.expires_ms, now_ms),))
            sent.append((grant.gate, lease_id, grant.granted, grant.expires_ms))
        return sent


@dataclass
class SimResult:
    cap: int
    admitted: int
    max_admitted: int
    uncapped: int
    demand: int
    max_held: int


def simulate(seed: int, gates: int = 8, demand_factor: float = 3.0, cuts_per_hour: float = 6.0, idle: int = 0, cap: int = 500) -> SimResult:
    """One slot at a site, one step per virtual second, from 5 minutes before the slot opens to its end.

    Arrivals are Poisson per gate (groups of 1-5 now and then, some
    rollbacks); a partition cuts a gate both ways: leases for it wait at the
    broker and its events and heartbeats wait at the gate until it heals;
    the hub learns of the cut only ``DEATH_NOTICED_MS`` later. Each gate is
    cut ``cuts_per_hour`` times an hour on average, half the cuts short, half
    longer than a lease.
    """
    rng = random.Random(seed)
    quota = replace(QUOTA, cap=cap)
    weights = [0.0 if n < idle else rng.expovariate(1.0) for n in range(gates)]
    per_second = demand_factor * cap / 3600 / sum(weights)
    model = [ModelGate(f"g{n}", per_second * weights[n], rng.randint(-20_000, 20_000), rng.randint(0, SKEW_MS)) for n in range(gates)]
    hub = ModelHub([gate.name for gate in model], quota)
    total = top = uncapped = demand = top_held = 0
    for now in range(OPEN - 300_000, WINDOW[1], STEP_MS):
        for gate in model:
            if now > OPEN - 290_000:
                cut(gate, now, rng, cuts_per_hour * STEP_MS / 3_600_000)
            if gate.up:
                for lease_id, granted, expires in gate.inbox:
                    gate.receive(lease_id, granted, expires)
                for kind, item in gate.outbox:
                    hub.receive(gate.name, kind, item)
                gate.inbox.clear()
                gate.outbox.clear()
            if (now - OPEN) % HEARTBEAT_MS == int(gate.name[1:]) % 10 * 1000:
                gate.heartbeat(now)
            if now >= OPEN:
                for due, persons in [item for item in gate.rollbacks if item[0] <= now]:
                    gate.rollbacks.remove((due, persons))
                    gate.used -= persons
                    total -= persons
                    gate.outbox.append(("use", (now + gate.lease_clock_offset_ms, -persons)))
                for _ in range(poisson(rng, gate.rate)):
                    persons = 1 if rng.random() < 0.85 else rng.randint(2, 5)
                    demand += persons
                    admitted = gate.admit(persons, now)
                    uncapped += admitted is None
                    if admitted:
                        total += persons
                        if rng.random() < 0.03:
                            gate.rollbacks.append((now + rng.randint(2_000, 8_000), persons))
            top = max(top, total)
        online = {gate.name: gate.up or now - gate.down_since < DEATH_NOTICED_MS for gate in model}
        for name, lease_id, granted, expires in hub.run(now, online):
            next(gate for gate in model if gate.name == name).inbox.append((lease_id, granted, expires))
        top_held = max(top_held, sum(held(slot, SKEW_MS) for slot in hub.ledger.values()))
    return SimResult(cap, total, top, uncapped, demand, top_held)


def cut(gate: ModelGate, now: int, rng: random.Random, chance: float) -> None:
    if gate.up and rng.random() < chance:
        gate.up, gate.down_since, gate.down_until = False, now, now + rng.choice([rng.randint(5_000, 60_000), rng.randint(60_000, 600_000)])
    elif not gate.up and now >= gate.down_until:
        gate.up = True


def poisson(rng: random.Random, rate: float) -> int:
    count, threshold = 0, rng.random()
    budget = math.exp(-rate)
    while threshold > budget:
        count += 1
        threshold *= rng.random()
    return count


@pytest.mark.parametrize("seed", range(18))
def test_cap_is_never_exceeded_with_random_partitions(seed):
    """Every third run cuts each gate off every few minutes; the others about every ten."""
    result = simulate(seed, demand_factor=[1.2, 3.0, 8.0][seed % 3], cuts_per_hour=60.0 if seed % 3 == 0 else 6.0)
    assert result.uncapped == 0
    assert result.max_admitted <= result.cap, result
    assert result.max_held <= result.cap, result


@pytest.mark.parametrize("seed", range(9))
def test_healthy_network_uses_at_least_95_percent_of_the_cap(seed):
    result = simulate(1000 + seed, demand_factor=[1.2, 2.0, 5.0][seed % 3], cuts_per_hour=0.0)
    assert result.demand > result.cap
    assert result.cap * 0.95 <= result.admitted <= result.cap, result


def test_an_idle_gates_share_flows_to_the_busy_one():
    result = simulate(7, gates=8, idle=7, demand_factor=2.0, cuts_per_hour=0.0)
    assert result.admitted >= 0.95 * result.cap, result
