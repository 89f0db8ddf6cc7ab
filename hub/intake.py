"""Gate messages in: decoded one by one into checked types, each gate held to an event rate.

Every inbound MQTT message becomes either a ``Unit`` the worker commits or a
refusal counted against the gate of its topic; nothing a gate sends can make
this raise (a last guard turns the unforeseen into a refusal, logged with its
traceback). Refused and rate-limited messages are still PUBACKed: the
broker must never deliver a poison message again. A gate loses nothing by
being limited: it keeps every event until the hub's signed ack covers it and
sends it again when acks stop coming.

The rate limit acts where a message arrives, in paho's thread
(``RateLimit.should_drop``, the link's ``drop`` filter): a message of a
gate over its rate is PUBACKed there, unread; any other is charged at once
(an events message by its size, ``EVENT_BYTES`` per event; a ping,
heartbeat or request one token of its own bucket), so messages not yet read
already count against their gate and cannot pile up ahead of other gates
in the broker's in-flight window to the hub. Once read, a well-formed
message is charged its real number of events instead (``settle``); a
refused one keeps the charge by size, so a flood of garbage is limited too.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from protocol.gate_messages import GateEvent, HealthReport, Ping, SnapshotRequest, decode_events, decode_health, decode_ping, decode_snapshot_request
from protocol.messages import MessageError
from transport.mqtt import Connected, Inbound
from protocol.topics import EVENTS, PING, REQUEST, TopicError, parse_gate_topic

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0  # at most one "rate limited" line per gate this often
MAX_BATCH_MESSAGES = 500
MAX_HELD_MESSAGES = 2000
PER_GATE_BATCH_EVENTS = 1000  # one gate's share of one commit: bounds how long another gate waits
EVENT_BYTES = 100  # about the smallest an event encodes to: a message is charged at least size / this before it is read
CONTROL_RATE = 20.0  # pings, heartbeats, births, deaths, requests a gate may send a second: an honest one sends about 1
CONTROL_BURST = 200


@dataclass
class Unit:
    """One gate message that passed validation, with its MQTT id for the PUBACK."""

    gate: str
    mid: int
    qos: int
    events: list[GateEvent] = field(default_factory=list)
    report: HealthReport | None = None
    request: SnapshotRequest | None = None
    ping: Ping | None = None


@dataclass
class Intake:
    """A batch after decoding: the units to commit, and what was refused, per gate."""

    units: list[Unit] = field(default_factory=list)
    refused_mids: list[tuple[int, int]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    limited: Counter[str] = field(default_factory=Counter)
    reconnected: bool = False


class TokenBuckets:
    """A token bucket per gate: ``rate`` tokens a second, at most ``burst`` saved up. Not locked: RateLimit holds the lock."""

    def __init__(self, rate: float, burst: int, monotonic: Callable[[], float]) -> None:
        self.rate, self.burst = rate, burst
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}

    def tokens(self, gate: str) -> float:
        now = self._monotonic()
        tokens, then = self._buckets.get(gate, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        self._buckets[gate] = (tokens, now)
        return tokens

    def charge(self, gate: str, count: float) -> None:
        """Take ``count`` tokens (a negative count gives them back); the bucket may go into debt, which the gate then waits out."""
        self._buckets[gate] = (self.tokens(gate) - count, self._monotonic())


class RateLimit:
    """Each gate held to ``rate`` events a second (``burst`` saved up), and to CONTROL_RATE other messages a second.

    Events and the rest (pings, heartbeats, births, deaths, requests) have
    separate buckets, so a gate catching up on its events never loses its
    pings (and with them "hub online"), and a flood of pings or heartbeats,
    each answered or stored by the worker, is limited as a flood of events is.
    Thread-safe: paho's thread admits and charges messages (``should_drop``),
    the worker corrects an events message's charge once it has read it (``settle``).
    """

    def __init__(self, rate: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        self._monotonic = monotonic
        self._events = TokenBuckets(rate, burst, monotonic)
        self._control = TokenBuckets(CONTROL_RATE, CONTROL_BURST, monotonic)
        self._logged: dict[str, float] = {}
        self._lock = threading.Lock()
        self._dropped: Counter[str] = Counter()

    def exhausted(self, gate: str) -> bool:
        """True while the gate has used up its events: its events messages are dropped before they are even read."""
        with self._lock:
            return self._events.tokens(gate) < 1

    def take(self, gate: str, count: int) -> None:
        """Charge ``count`` events (a negative count gives them back)."""
        with self._lock:
            self._events.charge(gate, count)

    def should_drop(self, topic: str, size: int) -> bool:
        """For ``MqttLink(drop=...)``: drop a message of a gate over its rate (counted, logged now and then);
        charge any other at once: an events message by its ``size``, anything else one token."""
        try:
            parsed = parse_gate_topic(topic)
        except TopicError:
            return False  # not a gate's message: refused by the worker, with a log line
        gate, events = parsed.gate, parsed.kind == EVENTS
        buckets = self._events if events else self._control
        with self._lock:
            if buckets.tokens(gate) >= 1:
                buckets.charge(gate, estimated_events(size) if events else 1)
                return False
            self._dropped[gate] += 1
        if self.should_log(gate):
            log.warning("gate %s is over its rate (events: %g/s, burst %d; other messages: %g/s, burst %d): dropping its %s unread; it sends them again",
                        gate, self.rate, self.burst, CONTROL_RATE, CONTROL_BURST, "events" if events else f"{parsed.kind} messages")
        return True

    def settle(self, gate: str, size: int, events: int) -> None:
        """A message read and found well-formed costs its real number of events, not the estimate by size."""
        self.take(gate, events - estimated_events(size))

    def collect_dropped(self) -> Counter[str]:
        """Messages dropped per gate since the last call."""
        with self._lock:
            dropped, self._dropped = self._dropped, Counter()
        return dropped

    def should_log(self, gate: str) -> bool:
        with self._lock:
            now = self._monotonic()
            if now - self._logged.get(gate, -LOG_EVERY_S) < LOG_EVERY_S:
                return False
            self._logged[gate] = now
            return True


def estimated_events(size: int) -> int:
    """What an events message of ``size`` bytes is charged before it is read (an event map is at least ~EVENT_BYTES)."""
    return max(1, size // EVENT_BYTES)


class FairQueue:
    """The next batch, fair between gates: each gate contributes at most PER_GATE_BATCH_EVENTS.

    Everything waiting is first sorted into per-gate queues (order kept within
    a gate), so a flooding gate's backlog waits behind one batch share and a
    quiet gate's message goes into the very next commit. (Messages over a
    gate's rate never get here: the link drops them as they arrive.) Used by
    the hub's worker thread only.
    """

    def __init__(self, inbound: queue.Queue) -> None:
        self._inbound = inbound
        self._held: dict[str, deque] = {}
        self._count = 0

    def take(self, wait_s: float) -> list:
        if not self._held:
            try:
                self._hold(self._inbound.get(timeout=wait_s))
            except queue.Empty:
                return []
        while self._count < MAX_HELD_MESSAGES:
            try:
                self._hold(self._inbound.get_nowait())
            except queue.Empty:
                break
        batch: list = []
        for key in list(self._held):
            waiting, budget = self._held[key], PER_GATE_BATCH_EVENTS
            while waiting and budget > 0 and len(batch) < MAX_BATCH_MESSAGES:
                item = waiting.popleft()
                batch.append(item)
                budget -= _weight(item)
            if not waiting:
                del self._held[key]
        self._count -= len(batch)
        return batch

    def _hold(self, item: object) -> None:
        key = item.topic.split("/")[3] if isinstance(item, Inbound) and item.topic.count("/") == 4 else ""
        self._held.setdefault(key, deque()).append(item)
        self._count += 1


def _weight(item: object) -> int:
    """About how many events a message holds, without decoding it: what the rate limit charges it on arrival."""
    return estimated_events(len(item.payload)) if isinstance(item, Inbound) else 1


def read_batch(batch: Iterable[object], site: str, limit: RateLimit) -> Intake:
    """Decode every message of a batch; never raises."""
    intake = Intake()
    for item in batch:
        if isinstance(item, Connected):
            intake.reconnected = True
        elif isinstance(item, Inbound):
            _read_one(item, site, limit, intake)
    return intake


def _read_one(item: Inbound, site: str, limit: RateLimit, intake: Intake) -> None:
    try:
        unit = decode_unit(item, site)
        if unit.events:
            limit.settle(unit.gate, len(item.payload), len(unit.events))
        intake.units.append(unit)
        return
    except (MessageError, TopicError) as error:
        log.warning("refused message on %.200s: %s", item.topic, error)
    except Exception:  # noqa: BLE001 - last guard: one message must never stop the hub; logged and counted
        log.exception("refused message on %.200s: unexpected error while decoding", item.topic)
    intake.refused[_gate_of(item.topic)] += 1
    intake.refused_mids.append((item.mid, item.qos))


def decode_unit(item: Inbound, site: str) -> Unit:
    topic = parse_gate_topic(item.topic)
    if topic.site != site:
        raise TopicError(f"message for site {topic.site!r} reached the hub of {site!r}")
    unit = Unit(topic.gate, item.mid, item.qos)
    if topic.kind == EVENTS:
        unit.events = decode_events(item.payload)
        strangers = {event.gate for event in unit.events} - {topic.gate}
        if strangers:
            raise MessageError(f"events of gate(s) {sorted(strangers)} published on gate {topic.gate}'s topic")
    elif topic.kind == REQUEST:
        unit.request = decode_snapshot_request(item.payload)
    elif topic.kind == PING:
        unit.ping = decode_ping(item.payload)
    else:
        unit.report = decode_health(topic.kind, item.payload)
    return unit


def _gate_of(topic: str) -> str:
    """The gate a refused message is counted against: its topic's gate level, if that is a gate name."""
    try:
        return parse_gate_topic(topic).gate
    except TopicError:
        return "(bad topic)"
