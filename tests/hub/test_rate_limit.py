"""A flooding gate delays only itself (issue 10): the per-gate token bucket, fair batches, and both on the live hub."""

from __future__ import annotations

import queue

from hub.intake import MAX_BATCH_MESSAGES, PER_GATE_BATCH_EVENTS, FairQueue, RateLimit
from protocol.gate_messages import encode_events
from protocol.topics import gate_topic
from testkit.hub_config import write_hub_config
from testkit.tickets import SITE
from transport.mqtt import Inbound

from tests.hub.conftest import TIMEOUT, start_hub


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events_topic(gate: str) -> str:
    return gate_topic(SITE, gate, "events")


def test_a_gate_over_its_rate_is_limited_until_its_bucket_refills_and_no_other_gate_is():
    clock = FakeMonotonic()
    limit = RateLimit(rate=10, burst=20, monotonic=clock)
    assert not limit.should_drop(events_topic("flood"))
    limit.take("flood", 25)  # one message of 25 events: the bucket goes into debt
    assert limit.should_drop(events_topic("flood"))
    assert not limit.should_drop(events_topic("east")), "another gate's bucket is its own"
    assert not limit.should_drop(gate_topic(SITE, "flood", "ping")), "only events are limited: pings and heartbeats of the gate still count"
    clock.now += 0.5  # 5 events back: still 0 tokens
    assert limit.should_drop(events_topic("flood"))
    clock.now += 0.25
    assert not limit.should_drop(events_topic("flood")), "events are back 0.75 s later at 10/s"
    assert limit.collect_dropped() == {"flood": 2} and limit.collect_dropped() == {}


def test_a_bucket_never_saves_up_more_than_its_burst():
    clock = FakeMonotonic()
    limit = RateLimit(rate=10, burst=20, monotonic=clock)
    clock.now += 3600
    limit.take("g1", 21)
    assert limit.exhausted("g1")


def test_a_quiet_gates_message_goes_into_the_first_batch_behind_a_flood():
    inbound: queue.Queue = queue.Queue()
    acked: list[tuple[int, int]] = []
    flood_payload = b"x" * 100 * 100  # weighs as a message of 100 events
    for mid in range(1, 1001):
        inbound.put(Inbound(events_topic("flood"), flood_payload, mid, 1))
    inbound.put(Inbound(events_topic("east"), b"x" * 100, 5000, 1))
    fair = FairQueue(inbound, RateLimit(10**9, 10**9), lambda mid, qos: acked.append((mid, qos)))
    first = fair.take(0.01)
    assert [item.mid for item in first if "east" in item.topic] == [5000], "the quiet gate's message is in the very next commit"
    flood = [item for item in first if "flood" in item.topic]
    assert len(flood) * 100 <= PER_GATE_BATCH_EVENTS and len(first) <= MAX_BATCH_MESSAGES, "the flood gets one share of the batch"
    assert [item.mid for item in flood] == list(range(1, len(flood) + 1)), "in order within a gate"
    assert acked == []


def test_a_gate_over_its_rate_is_pubacked_and_dropped_unread_by_the_fair_queue():
    inbound: queue.Queue = queue.Queue()
    acked: list[tuple[int, int]] = []
    limit = RateLimit(rate=1, burst=10, monotonic=FakeMonotonic())
    limit.take("flood", 10)
    inbound.put(Inbound(events_topic("flood"), b"\xff", 7, 1))
    inbound.put(Inbound(events_topic("east"), b"\xff", 8, 1))
    batch = FairQueue(inbound, limit, lambda mid, qos: acked.append((mid, qos))).take(0.01)
    assert [item.mid for item in batch] == [8] and acked == [(7, 1)], "acknowledged, so the broker never delivers it again; the gate resends"


def test_a_flooding_gate_is_limited_on_the_live_hub_and_every_other_gate_is_served(tmp_path, broker, hub_key, gate_factory):
    config = write_hub_config(tmp_path / "hub", broker, hub_key, gate_event_rate=1, gate_event_burst=100)
    hub = start_hub(config)
    try:
        flood, honest = gate_factory("g1"), gate_factory("g2")
        for payload in [encode_events(flood.make_events(100, kind="deny", data={})) for _ in range(30)]:
            flood.publish_raw(events_topic("g1"), payload).wait_for_publish(TIMEOUT)
        honest.publish_events(honest.make_events(3, kind="deny", data={}))  # reaches the hub behind the whole flood
        assert honest.wait_for(lambda view: view.acked_seq == 3, TIMEOUT), "the other gate is acked"
        honest.publish_events(honest.make_events(1, kind="deny", data={}))  # drops are counted with the batch after them
        assert honest.wait_for(lambda view: view.acked_seq == 4, TIMEOUT)
        with hub.service.progress:
            stats = hub.service.stats
            assert stats.rate_limited["g1"] >= 1, "the flood is dropped unread once the gate's bucket is empty"
            assert stats.acked["g1"] < 30 * 100, "not all of the flood was taken in"
            assert stats.rate_limited["g2"] == 0 and stats.refused_by_gate["g2"] == 0
        assert hub.thread.is_alive()
    finally:
        hub.stop()
