"""Harness: any gate-to-hub message into the hub's real handler and a real SQLite store.

Run: python -m fuzz.hub_inbound -runs=1000000. Each input is one MQTT
message as the hub's link hands it over (``protocol.mqtt.Inbound``): the
first bytes pick the topic (events, birth, death, heartbeat, request of one
of two gates; now and then another site or a topic made of the input), the
rest is the payload. It goes through ``HubService._handle``, the function
the worker runs for every batch, on a ``SqliteHubStore`` in a scratch
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
from protocol.messages import GateEvent, SnapshotRequest, encode_events, encode_health, encode_snapshot_request
from protocol.mqtt import BrokerConfig, Inbound, MqttLink
from protocol.topics import BIRTH, DEATH, EVENTS, GATE_KINDS, HEARTBEAT, REQUEST, gate_topic, hub_subscription

from .driver import Draw, run, scratch_dir
from .fixtures import HUB, NOW, SITE

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
            self.service = HubService(config, SqliteHubStore(config.database, "off"), link, HUB, inbound, clock=lambda: NOW)
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
    event = GateEvent(b"\x01" * 16, "east-1", 1, "admission", NOW * 1000, b"\x02" * 12, {
        "gate": "east-1", "decision": "grant", "reason": "valid", "detail": "", "persons": 1, "zone": "main", "day": "2026-11-18",
        "direction": "entry", "flagged": False, "clock_trusted": True, "hub_online": True, "expires": NOW + 86_400,
        "usage": {"zone": "main", "day": "2026-11-18", "entries": 1, "exits": 0},
        "quota": {"day": "2026-11-18", "slot_start": 540, "persons": 1},
    })
    deny = GateEvent(b"\x03" * 16, "east-1", 2, "deny", NOW * 1000, None, {"reason": "malformed", "detail": "not base45"})
    health = {"bdseq": 1, "at": NOW * 1000, "version": "0.1", "rev_seq": 0, "used_seq": 0, "backlog": 0, "clock_trusted": True, "clock_offset_ms": 3,
              "quota": [["2026-11-18", 540, 600, 10, 1, NOW * 1000 + 60_000, 2]], "disk_free_mb": 100, "temperature_c": 48.5, "scanner": "ok", "relay": "ok"}
    return [
        _selector(0, EVENTS) + encode_events([event, deny]),
        _selector(0, EVENTS) + encode_events([event])[1:],  # a single event map
        _selector(0, BIRTH) + encode_health({"bdseq": 1, "at": NOW * 1000, "version": "0.1"}),
        _selector(1, HEARTBEAT) + encode_health(health),
        _selector(1, DEATH) + encode_health({"bdseq": 1, "at": NOW * 1000}),
        _selector(0, REQUEST) + encode_snapshot_request(SnapshotRequest("used", 0)),
    ]


if __name__ == "__main__":
    raise SystemExit(run("hub_inbound", one_input, seeds))
