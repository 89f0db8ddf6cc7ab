"""A flooding gate delays only itself (issue 10): the per-gate token bucket, fair batches, and both on the live hub."""

from __future__ import annotations

import os
import queue

from hub.intake import CONTROL_BURST, CONTROL_RATE, EVENT_BYTES, MAX_BATCH_MESSAGES, PER_GATE_BATCH_EVENTS, FairQueue, RateLimit, read_batch
from protocol.gate_messages import EventData, EventKind, GateEvent, encode_events
from protocol.topics import gate_topic
from testkit.hub_config import write_hub_config
from testkit.tickets import NOW, SITE
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
    assert not limit.should_drop(events_topic("flood"), 25 * EVENT_BYTES)  # admitted with 20 tokens, charged 25: into debt
    assert limit.should_drop(events_topic("flood"), 100)
    assert not limit.should_drop(events_topic("east"), 100), "another gate's bucket is its own"
    assert not limit.should_drop(gate_topic(SITE, "flood", "ping"), 100), "a gate over its events still has its pings: it stays hub online"
    clock.now += 0.5  # 5 events back: still 0 tokens
    assert limit.should_drop(events_topic("flood"), 100)
    clock.now += 0.25
    assert not limit.should_drop(events_topic("flood"), 100), "events are back 0.75 s later at 10/s"
    assert limit.collect_dropped() == {"flood": 2} and limit.collect_dropped() == {}


def test_a_flood_of_pings_or_heartbeats_is_limited_by_a_bucket_of_its_own():
    clock = FakeMonotonic()
    limit = RateLimit(rate=10**6, burst=10**6, monotonic=clock)
    pings = [limit.should_drop(gate_topic(SITE, "g1", kind), 50) for kind in ("ping", "heartbeat") * 300]
    assert pings.count(False) == CONTROL_BURST and limit.collect_dropped() == {"g1": 600 - CONTROL_BURST}
    assert not limit.should_drop(events_topic("g1"), 100), "its events have their own bucket"
    assert not limit.should_drop(gate_topic(SITE, "g2", "ping"), 50)
    clock.now += 1
    assert [limit.should_drop(gate_topic(SITE, "g1", "ping"), 50) for _ in range(int(CONTROL_RATE) + 1)].count(False) == CONTROL_RATE


def test_a_bucket_never_saves_up_more_than_its_burst():
    clock = FakeMonotonic()
    limit = RateLimit(rate=10, burst=20, monotonic=clock)
    clock.now += 3600
    limit.take("g1", 21)
    assert limit.exhausted("g1")


def test_messages_not_yet_read_already_count_against_their_gate():
    """The flood must not slip past the limit while the worker is busy: each message is charged by its size as it arrives."""
    limit = RateLimit(rate=1, burst=1000, monotonic=FakeMonotonic())
    admitted = sum(not limit.should_drop(events_topic("flood"), 100 * EVENT_BYTES) for _ in range(50))
    assert admitted == 10, "1,000 events of burst: ten messages of 100, none read yet"


def test_once_read_a_message_costs_its_events_and_a_refused_one_its_size():
    limit = RateLimit(rate=1, burst=1000, monotonic=FakeMonotonic())
    garbage = b"\xff" * (300 * EVENT_BYTES)
    events = [GateEvent(os.urandom(16), "g1", b"i" * 16, seq, EventKind.DENY, NOW * 1000, None, EventData(extra={"detail": "d" * 400})) for seq in range(1, 51)]
    good = encode_events(events)  # 50 events of ~500 bytes: charged ~250 by size as it arrives
    assert len(good) // EVENT_BYTES > 200
    messages = [Inbound(events_topic("g1"), payload, mid, 1) for mid, payload in enumerate((garbage, good), 1)]
    assert not any(limit.should_drop(item.topic, len(item.payload)) for item in messages)
    intake = read_batch(messages, SITE, limit)
    assert intake.refused["g1"] == 1 and len(intake.units) == 1
    # left: 1000 - 300 (the refused garbage keeps its charge by size) - 50 (the good message's real events) = 650
    assert sum(not limit.should_drop(events_topic("g1"), 100 * EVENT_BYTES) for _ in range(20)) == 7


def test_a_quiet_gates_message_goes_into_the_first_batch_behind_a_flood():
    inbound: queue.Queue = queue.Queue()
    flood_payload = b"x" * 100 * 100  # weighs as a message of 100 events
    for mid in range(1, 1001):
        inbound.put(Inbound(events_topic("flood"), flood_payload, mid, 1))
    inbound.put(Inbound(events_topic("east"), b"x" * 100, 5000, 1))
    first = FairQueue(inbound).take(0.01)
    assert [item.mid for item in first if "east" in item.topic] == [5000], "the quiet gate's message is in the very next commit"
    flood = [item for item in first if "flood" in item.topic]
    assert len(flood) * 100 <= PER_GATE_BATCH_EVENTS and len(first) <= MAX_BATCH_MESSAGES, "the flood gets one share of the batch"
    assert [item.mid for item in flood] == list(range(1, len(flood) + 1)), "in order within a gate"


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
