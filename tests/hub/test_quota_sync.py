"""Quota leases over a real Mosquitto with the site ACL: set, raised by admissions, held through a cut, signed.

The hub runs on a clock the test moves (its leases, expiries and health use
it), so a lease expires without the test sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from nacl.signing import SigningKey

from gate.decision import Reason
from lungta.config import load_hub_config
from protocol.claims import TimeSlot
from hub.service import HubService
from protocol.keys import kid_for
from protocol.hub_messages import QuotaLease, lease_body, sign_message
from protocol.gate_messages import LeaseReport, lease_report_map
from protocol.topics import hub_topic
from tests.hub.conftest import TIMEOUT, RunningHub
from testkit.hub_config import write_hub_config
from testkit.sim_gate import SimGate, hub_impostor
from tests.hub.test_gate_sync import ticket
from tests.hub.test_sync import hub_command

DAY, SLOT, START = "2099-11-18", "09:00-10:00", 540
LEASE_S, SKEW_S = 60, 10


class HubClock:
    """Hub time in Unix seconds, moved by the test; read from the hub's worker thread."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


@pytest.fixture
def clock() -> HubClock:
    return HubClock(datetime(2099, 11, 18, 9, 10, tzinfo=ZoneInfo("Asia/Shanghai")))


@pytest.fixture
def quota_hub(tmp_path: Path, broker, hub_key: SigningKey, clock: HubClock) -> Iterator[RunningHub]:
    config_path = write_hub_config(tmp_path / "hub", broker, hub_key, quota_lease_s=LEASE_S, quota_skew_s=SKEW_S)
    config = load_hub_config(config_path)
    service = HubService.from_config(config, clock)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="hub-worker", daemon=True)
    thread.start()
    assert service.link.subscribed.wait(TIMEOUT), "hub did not connect and subscribe"
    running = RunningHub(service, config, thread, stop)
    running.config_path = config_path  # type: ignore[attr-defined]
    yield running
    running.stop()


def set_quota(hub: RunningHub, cap: int) -> dict:
    return json.loads(hub_command("quota", "set", "--config", str(hub.config_path), "--site", "potala", "--date", DAY, "--slot", SLOT, "--cap", str(cap)))  # type: ignore[attr-defined]


def show(hub: RunningHub) -> dict[str, dict]:
    out = hub_command("quota", "show", "--config", str(hub.config_path), "--date", DAY, "--slot", SLOT, "--json")  # type: ignore[attr-defined]
    return {row["gate"]: row for row in map(json.loads, out.splitlines())}


def listed(hub: RunningHub) -> dict:
    (row,) = map(json.loads, hub_command("quota", "list", "--config", str(hub.config_path), "--json").splitlines())  # type: ignore[attr-defined]
    return row


def lease_of(gate: SimGate) -> QuotaLease | None:
    with gate.changed:
        return gate.view.leases.get((DAY, START))


def granted(gate: SimGate) -> int:
    lease = lease_of(gate)
    return lease.granted if lease else -1


def connect_all(hub: RunningHub, gate_factory, *names: str) -> list[SimGate]:
    gates = [gate_factory(name, clock=hub.service.clock) for name in names]
    assert hub.service.wait_for(lambda stats: stats.reports >= len(names), TIMEOUT), "births reached the hub"
    return gates


def use_up(hub: RunningHub, gate: SimGate, until: int) -> None:
    """Admit as many as the gate's lease allows, round after round, until it has admitted ``until``."""
    while (used := gate.view.quota_used.get((DAY, START), 0)) < until:
        assert gate.wait_for(lambda view: view.leases[(DAY, START)].granted > used, TIMEOUT), f"the hub did not raise {gate.gate} above {used}"
        gate.publish_events(gate.quota_events(DAY, START, [1] * (min(granted(gate), until) - used)))


def test_quota_set_reaches_every_gate_as_a_signed_lease(quota_hub, gate_factory, hub_key, clock):
    gates = connect_all(quota_hub, gate_factory, "g1", "g2", "g3")
    assert set_quota(quota_hub, 90)["cap"] == 90
    for gate in gates:
        assert gate.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT), gate.gate
        (message, *_) = [m for m in gate.view.accepted if m.stream == f"quota/{gate.gate}"]
        assert message.kid == kid_for(hub_key.verify_key) and gate.view.refused == []
    leases = [lease_of(gate) for gate in gates]
    assert [(lease.granted, lease.slot_end) for lease in leases] == [(15, 600)] * 3, "half the cap, split evenly"
    assert {lease.expires_ms for lease in leases} == {clock.ms + LEASE_S * 1000}


def test_a_known_gate_that_is_away_gets_a_zero_lease_then_its_share_on_return(quota_hub, gate_factory):
    g1, g3 = connect_all(quota_hub, gate_factory, "g1", "g3")
    g3.disconnect(with_will=True)
    assert quota_hub.service.wait_for(lambda stats: stats.reports >= 3, TIMEOUT), "the death reached the hub"
    set_quota(quota_hub, 40)
    assert g1.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT)
    assert quota_hub.service.wait_for(lambda stats: stats.outbox_published >= 2, TIMEOUT), "g3's lease waits at the broker"
    g3.bdseq = 2
    g3.connect()
    assert g3.wait_for(lambda view: view.leases.get((DAY, START)) is not None and view.leases[(DAY, START)].granted > 0, TIMEOUT)
    first = [m for m in g3.view.accepted if m.stream == "quota/g3"][0]
    assert first.body["granted"] == 0, "a slot is capped at a gate from the moment the quota is set"
    assert granted(g1) + granted(g3) <= 40


def test_admissions_make_the_hub_raise_the_lease_up_to_the_cap_and_no_further(quota_hub, gate_factory, clock):
    (g1,) = connect_all(quota_hub, gate_factory, "g1")
    set_quota(quota_hub, 40)
    assert g1.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT)
    assert granted(g1) == 20, "half the pool while demand is unknown"
    use_up(quota_hub, g1, 40)
    assert g1.wait_for(lambda view: view.acked_seq == 40, TIMEOUT)
    g1.quota_heartbeat(at_ms=clock.ms)
    assert quota_hub.service.wait_for(lambda stats: stats.reports >= 2, TIMEOUT)
    assert granted(g1) == 40 and listed(quota_hub)["admitted"] == 40


def test_a_resent_batch_counts_once_and_a_rollback_gives_the_place_back(quota_hub, gate_factory):
    (g1,) = connect_all(quota_hub, gate_factory, "g1")
    set_quota(quota_hub, 40)
    assert g1.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT)
    batch = g1.quota_events(DAY, START, [2, 1, 3])
    g1.publish_events(batch)
    g1.publish_events(batch)
    assert quota_hub.service.wait_for(lambda stats: stats.duplicates == 3, TIMEOUT)
    g1.publish_events(g1.quota_events(DAY, START, [-3]))
    assert g1.wait_for(lambda view: view.acked_seq == 4, TIMEOUT)
    assert listed(quota_hub)["admitted"] == 3


def test_admissions_under_no_lease_are_counted_in_their_slot_and_an_excess_is_reported(quota_hub, gate_factory, caplog):
    """A gate that held no lease (a quota set while it was away) admitted people in the slot: the hub counts
    them there, and says so when that takes the slot past its cap."""
    (g1,) = connect_all(quota_hub, gate_factory, "g1")
    set_quota(quota_hub, 10)
    assert g1.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT)
    away = gate_factory("g2", clock=quota_hub.service.clock)
    away.publish_events(away.make_events(6, data={"usage": {"zone": "main", "day": DAY, "entries": 1, "exits": 0}, "persons": 2}))  # no quota entry
    assert away.wait_for(lambda view: view.acked_seq == 6, TIMEOUT)
    assert listed(quota_hub)["admitted"] == 12
    assert show(quota_hub)["g2"]["used"] == 12
    assert quota_hub.service.wait_for(lambda stats: "12 person(s) admitted, cap 10, 2 over" in caplog.text, TIMEOUT), caplog.text[-2000:]


def test_a_cut_off_gate_keeps_its_share_until_it_says_what_it_used_after_expiry(quota_hub, gate_factory, clock):
    g1, g2 = connect_all(quota_hub, gate_factory, "g1", "g2")
    set_quota(quota_hub, 40)
    assert all(gate.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT) for gate in (g1, g2))
    away = lease_of(g2)
    assert (granted(g1), away.granted) == (10, 10)
    g2.disconnect(with_will=True)
    assert quota_hub.service.wait_for(lambda stats: stats.reports >= 3, TIMEOUT), "the death reached the hub"

    use_up(quota_hub, g1, 30)
    g1.quota_heartbeat(at_ms=clock.ms)
    assert quota_hub.service.wait_for(lambda stats: stats.reports >= 4, TIMEOUT)
    assert granted(g1) == 30, "g2 may be admitting its 10 right now"

    clock.advance(LEASE_S + SKEW_S + 5)  # g2's lease has expired, skew included
    before = lease_of(g1).lease_id
    g1.quota_heartbeat(at_ms=clock.ms)  # g1 stays online on the moved clock, and is due for renewal
    assert g1.wait_for(lambda view: view.leases[(DAY, START)].lease_id > before, TIMEOUT), "g1's lease was renewed"
    assert granted(g1) == 30, "an expired lease still bounds a gate that has not said how much of it it used"
    assert show(quota_hub)["g2"]["held"] == 10

    g2.bdseq = 2
    g2.connect()
    g2.heartbeat(quota=[lease_report_map(LeaseReport(DAY, START, away.slot_end, away.granted, 4, away.lease_id, away.expires_ms))], at=clock.ms)
    assert g1.wait_for(lambda view: view.leases[(DAY, START)].granted > 30, TIMEOUT), "g2's unused 6 are shared out again"
    assert g2.wait_for(lambda view: view.leases[(DAY, START)].lease_id > away.lease_id, TIMEOUT)
    rows = show(quota_hub)
    assert rows["g2"]["used"] == 4 and sum(row["held"] for row in rows.values()) <= 40
    assert granted(g1) + max(granted(g2), 4) <= 40


def test_a_forged_or_replayed_lease_is_refused_by_the_gate(quota_hub, gate_factory, broker):
    (g1,) = connect_all(quota_hub, gate_factory, "g1")
    set_quota(quota_hub, 40)
    assert g1.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT)
    genuine = lease_of(g1)
    greedy = QuotaLease(DAY, START, 600, 10_000, genuine.lease_id + 1, genuine.expires_ms)
    forged = sign_message("quota/g1", genuine.lease_id + 1, 0, lease_body(greedy), SigningKey.generate(), site=broker.site)
    replay = sign_message("quota/g1", genuine.lease_id, 0, lease_body(greedy), quota_hub.service.publisher._key, site=broker.site)
    with hub_impostor(broker.host, broker.port, broker.hub_user, broker.password(broker.hub_user)) as intruder:
        for payload in (forged, replay):
            intruder.publish(hub_topic(broker.site, "quota/g1"), payload, qos=1).wait_for_publish(TIMEOUT)
        assert g1.wait_for(lambda view: len(view.refused) == 2, TIMEOUT), g1.view.refused
    assert [reason for _, reason in g1.view.refused] == ["unknown_key", "replay"]
    assert lease_of(g1) == genuine


def test_real_gates_admit_up_to_the_cap_and_not_one_more(hub, hub_config_path, gates, issuer_key):
    """The gate of gate/ (validator, HubSync, SQLite state) against this hub: leases, top-ups, reports."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))  # the default time zone of hub.toml and gate.toml alike
    minute = now.hour * 60 + now.minute
    day, start, end = now.date().isoformat(), max(0, minute - 60), min(1440, minute + 60)
    east, west = gates("g1"), gates("g2")
    assert hub.service.wait_for(lambda stats: stats.reports >= 2, TIMEOUT)
    hub_command("quota", "set", "--config", str(hub_config_path), "--site", "potala", "--date", day, "--slot", str(TimeSlot(start, end)), "--cap", "6")

    def lease(gate) -> LeaseReport | None:
        return next(iter(gate.parts.store.quota_leases()), None)

    for gate in (east, west):
        gate.wait(lambda g: lease(g) is not None, "lease installed")
    for _ in range(5):
        east.wait(lambda g: lease(g).granted > lease(g).used, "the hub raised the lease after the last admission")
        assert east.validator.scan(ticket(issuer_key)).decision.granted
    assert east.validator.scan(ticket(issuer_key)).decision.reason is Reason.QUOTA_EXHAUSTED, "the 6th place is west's"
    assert west.validator.scan(ticket(issuer_key)).decision.granted
    assert west.validator.scan(ticket(issuer_key)).decision.reason is Reason.QUOTA_EXHAUSTED
    for gate in (east, west):
        gate.wait(lambda g: g.parts.store.backlog() == 0, "admissions acknowledged")
    reports = hub.service.stats.reports
    assert hub.service.wait_for(lambda stats: stats.reports >= reports + 4, TIMEOUT), "heartbeats after the last admission"
    rows = {row["gate"]: row for row in map(json.loads, hub_command("quota", "show", "--config", str(hub_config_path), "--date", day, "--slot", str(TimeSlot(start, end)), "--json").splitlines())}
    assert {gate: row["used"] for gate, row in rows.items()} == {"g1": 5, "g2": 1}
    # the gates' heartbeats confirmed a lease (the hub may have sent a newer one since)
    assert all(1 <= row["confirmed"] <= row["lease_id"] for row in rows.values()), rows


def test_a_gate_that_comes_back_with_a_new_state_gets_its_leases_again(quota_hub, gate_factory):
    (g1,) = connect_all(quota_hub, gate_factory, "g1")
    set_quota(quota_hub, 40)
    assert g1.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT)
    held = lease_of(g1)
    g1.disconnect()
    wiped = gate_factory("g1", clock=quota_hub.service.clock, bdseq=2)  # a re-imaged board: new incarnation, no lease
    assert wiped.incarnation != g1.incarnation
    assert wiped.wait_for(lambda view: (DAY, START) in view.leases, TIMEOUT), "without its lease it would treat the slot as uncapped"
    assert lease_of(wiped).lease_id >= held.lease_id and lease_of(wiped).granted >= held.granted
