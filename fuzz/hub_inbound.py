"""Harness: any gate-to-hub message into the hub's real handler and a real SQLite store.

Run: python -m fuzz.hub_inbound -runs=1000000. Each input is one MQTT
message as the hub's link hands it over (``transport.mqtt.Inbound``): the
first bytes pick the topic (birth, death, heartbeat, ping, events, request
of one of two gates; now and then another site or a topic made of the
input), the rest is the payload. It goes through ``HubService._handle``, the
function the worker runs for every batch (``hub.intake`` decodes, the store
commits, acks and pongs are published), on a ``SqliteHubStore`` in a scratch
directory and an ``MqttLink`` that is never connected (paho keeps what is
published, so the service is rebuilt every ``REBUILD`` inputs). Findings:
any exception out of the handler (a poison message would stop the worker
and come back after every restart), and a message not counted.
"""

from __future__ import annotations

import queue

from hub.config import HubConfig
from hub.service import HubService
from hub.sqlite_store import SqliteHubStore
from protocol.gate_messages import (
    EventData,
    EventKind,
    GateEvent,
    LeaseReport,
    Ping,
    QuotaCount,
    SnapshotRequest,
    UsageCounters,
    encode_events,
    encode_health,
    encode_ping,
    encode_snapshot_request,
    lease_report_map,
)
from transport.mqtt import BrokerConfig, Inbound, MqttLink
from protocol.ticket import read_ticket
from protocol.topics import BIRTH, DEATH, EVENTS, GATE_KINDS, HEARTBEAT, PING, REQUEST, REVOCATIONS, USED, gate_topic, hub_subscription

from .driver import Draw, run, scratch_dir
from .fixtures import GENUINE, HUB, NOW, SITE, TRUST

GATES = ("east-1", "west-2")
REBUILD = 5000


class _Hub:
    """The service under test, rebuilt on a fresh store every REBUILD inputs."""

    def __init__(self) -> None:
        self.service: HubService | None = None
        self.handled = 0

    def get(self) -> HubService:
        if self.service is None or self.handled % REBUILD == 0:
            if self.service is not None:
                self.service.store.close()
            directory = scratch_dir("hub")
            config = HubConfig(site=SITE, key=directory / "hub.key", database=directory / "hub.sqlite3", broker=BrokerConfig(port=1), synchronous="off")
            inbound: queue.Queue = queue.Queue()
            link = MqttLink(config.broker, [hub_subscription(SITE)], inbound, queue.Queue())
            self.service = HubService(config, SqliteHubStore(config.database, "off"), link, HUB, inbound, clock=lambda: NOW, ticket_trust=TRUST)
        self.handled += 1
        return self.service


HUB_UNDER_TEST = _Hub()


def _topic(draw: Draw) -> str:
    selector = draw.byte()
    if selector >= 0xF0:  # a topic made of the input itself
        return draw.data[draw.pos:draw.pos + draw.byte()].decode("utf-8", "replace")
    site = SITE if selector < 0xE0 else "other-site"
    return gate_topic(site, GATES[selector & 1], GATE_KINDS[(selector >> 1) % len(GATE_KINDS)])


def one_input(data: bytes) -> None:
    draw = Draw(data)
    topic = _topic(draw)
    service = HUB_UNDER_TEST.get()
    before = service.stats.messages
    service._handle([Inbound(topic, draw.rest(), HUB_UNDER_TEST.handled % 65535 + 1, 1)])
    assert service.stats.messages == before + 1, "message not counted"


def _selector(gate: int, kind: str) -> bytes:
    return bytes([GATE_KINDS.index(kind) << 1 | gate])


def seeds() -> list[bytes]:
    incarnation, day = b"\x0a" * 16, "2026-11-18"
    ticket = sorted(GENUINE)[0]
    ticket_id = read_ticket(ticket).claims.ticket_id
    admission = GateEvent(b"\x01" * 16, "east-1", incarnation, 1, EventKind.ADMISSION, NOW * 1000, ticket_id, EventData(
        usage=UsageCounters("white-palace", day, 1, 0), quota=QuotaCount(day, 540, 1), expires=NOW + 86_400, persons=1, ticket=ticket,
        extra={"decision": "grant", "reason": "valid", "detail": "", "zone": "white-palace", "day": day, "direction": "entry",
               "flagged": False, "clock_trusted": True, "hub_online": True}))
    deny = GateEvent(b"\x03" * 16, "east-1", incarnation, 2, EventKind.DENY, NOW * 1000, None, EventData(extra={"reason": "malformed", "detail": "not base45"}))
    exit_ = GateEvent(b"\x04" * 16, "east-1", incarnation, 3, EventKind.EXIT, NOW * 1000 + 5, ticket_id, EventData(
        usage=UsageCounters("white-palace", day, 1, 1), expires=NOW + 86_400, ticket=ticket))
    rollback = GateEvent(b"\x05" * 16, "east-1", incarnation, 4, EventKind.ROLLBACK, NOW * 1000 + 9, ticket_id, EventData(quota=QuotaCount(day, 540, -1)))
    revoke = GateEvent(b"\x06" * 16, "west-2", b"\x0b" * 16, 1, EventKind.LOCAL_REVOCATION, NOW * 1000, b"\x07" * 12, EventData(expires=NOW + 3600))
    lease = lease_report_map(LeaseReport(day, 540, 600, 10, 1, 1, NOW * 1000 + 60_000))
    birth = {"bdseq": 1, "at": NOW * 1000, "version": "0.1", "incarnation": incarnation, "next_seq": 5}
    heartbeat = {"bdseq": 1, "at": NOW * 1000, "version": "0.1", "incarnation": b"\x0b" * 16, "next_seq": 2, "rev_seq": 0, "used_seq": 0, "backlog": 0,
                 "clock_trusted": True, "clock_offset_ms": 3, "quota": [lease], "disk_free_mb": 100, "temperature_c": 48.5, "scanner": "ok", "relay": "ok"}
    return [
        _selector(0, EVENTS) + encode_events([admission, deny, exit_, rollback]),
        _selector(0, EVENTS) + encode_events([admission])[1:],  # a single event map, not an array
        _selector(1, EVENTS) + encode_events([revoke]),
        _selector(1, EVENTS) + encode_events([admission]),  # events of another gate on this gate's topic
        _selector(0, BIRTH) + encode_health(birth),
        _selector(1, HEARTBEAT) + encode_health(heartbeat),
        _selector(0, DEATH) + encode_health({"bdseq": 1, "at": NOW * 1000}),
        _selector(0, PING) + encode_ping(Ping(b"\x08" * 16, incarnation, 5)),
        _selector(0, PING) + encode_ping(Ping(b"\x09" * 16, incarnation, 1)),  # behind what the hub holds: a reset pong
        _selector(1, REQUEST) + encode_snapshot_request(SnapshotRequest(USED, 0)),
        _selector(0, REQUEST) + encode_snapshot_request(SnapshotRequest(REVOCATIONS, 3)),
    ]


if __name__ == "__main__":
    raise SystemExit(run("hub_inbound", one_input, seeds))
