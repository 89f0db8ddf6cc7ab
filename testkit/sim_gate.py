"""A minimal gate client for tests and benchmarks: the gate side of the hub protocol, nothing more.

It connects the way a real gate must (fixed client id, MQTT v5 persistent
session, Last Will carrying its bdseq, birth on every connect), verifies
every hub message with ``open_message`` and a ``SequenceTracker``, and
records what it accepted and refused so a test can wait on it. Quota leases
are kept as a gate keeps them (the highest lease_id per slot); the gate's
admission rule itself is left to the test.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.gate_messages import (
    EventKind,
    GateEvent,
    LeaseReport,
    Ping,
    SnapshotRequest,
    decode_event_data,
    encode_events,
    encode_health,
    encode_ping,
    encode_snapshot_request,
    lease_report_map,
)
from protocol.hub_messages import (
    HubMessage,
    QuotaLease,
    SequenceTracker,
    Verdict,
    decode_ack,
    decode_lease,
    decode_pong,
    decode_revocations,
    decode_used,
    open_message,
)
from protocol.snapshots import SnapshotAssembler, decode_snapshot_chunk
from protocol.messages import MessageError
from protocol.topics import ACK, PONG, QUOTA, REVOCATIONS, SNAPSHOT, USED, gate_client_id, gate_subscriptions, gate_topic, stream_of_hub_topic
from protocol.trust import TrustStore


@contextmanager
def hub_impostor(host: str, port: int, user: str, password: str) -> Iterator[mqtt.Client]:
    """A client with the hub's stolen broker password: the ACL lets it publish on hub topics, but it has no hub key."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stolen-hub-password", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.connect(host, port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class GateView:
    """What the simulated gate has seen; read under ``SimGate.changed``."""

    connected: bool = False
    subscribed: bool = False
    acked_seq: int = 0
    revoked: dict[bytes, int] = field(default_factory=dict)
    used: list = field(default_factory=list)
    accepted: list[HubMessage] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    gaps: list[tuple[str, int]] = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    receipts: list[tuple[str, int, int, float]] = field(default_factory=list)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    leases: dict[tuple[str, int], QuotaLease] = field(default_factory=dict)
    quota_used: dict[tuple[str, int], int] = field(default_factory=dict)
    pongs: list = field(default_factory=list)
    disconnects: int = 0


class SimGate:
    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        gate: str,
        password: str,
        hub_trust: TrustStore,
        bdseq: int = 1,
        username: str | None = None,
        session_expiry_s: int = 3600,
        keep_messages: bool = True,
        subscriptions: list[str] | None = None,
        changed: threading.Condition | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``subscriptions`` defaults to a real gate's; ``changed`` may be shared by many gates; ``clock`` dates its events."""
        self.clock = clock
        self.site, self.gate, self.bdseq = site, gate, bdseq
        self.trust = hub_trust
        self.tracker = SequenceTracker()
        self.view = GateView()
        self.changed = changed or threading.Condition()
        self.subscriptions = subscriptions or gate_subscriptions(site, gate)
        self.keep_messages = keep_messages
        self._assembler = SnapshotAssembler()
        self._next_seq = 1
        self.incarnation = os.urandom(16)
        self._host, self._port, self._expiry = host, port, session_expiry_s
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gate_client_id(site, gate), protocol=mqtt.MQTTv5)
        client.username_pw_set(username or gate, password)
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        self.client = client

    # ---- lifecycle ----

    def connect(self, wait: bool = True, timeout: float = 10.0) -> "SimGate":
        self.client.will_set(gate_topic(self.site, self.gate, "death"), encode_health({"bdseq": self.bdseq}), qos=1)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._expiry
        self.client.connect_async(self._host, self._port, keepalive=30, clean_start=False, properties=properties)
        self.client.loop_start()
        if wait and not self.wait_for(lambda view: view.subscribed, timeout):
            raise TimeoutError(f"gate {self.gate} did not connect and subscribe within {timeout} s")
        return self

    def disconnect(self, with_will: bool = False) -> None:
        """Clean disconnect, or one that makes the broker publish the Last Will (MQTT v5 reason 0x04)."""
        reason = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message") if with_will else None
        self.client.disconnect(reasoncode=reason)
        self.client.loop_stop()
        with self.changed:
            self.view.connected = self.view.subscribed = False

    # ---- gate -> hub ----

    def make_events(self, count: int, kind: str = "admission", ticket_ids: list[bytes] | None = None, data: dict | None = None) -> list[GateEvent]:
        events = []
        for index in range(count):
            ticket_id = ticket_ids[index] if ticket_ids else os.urandom(12)
            fields = dict(data if data is not None else {"usage": {"zone": "main", "day": "2026-11-18", "entries": 1, "exits": 0}})
            events.append(GateEvent(os.urandom(16), self.gate, self.incarnation, self._next_seq, EventKind(kind), int(self.clock() * 1000), ticket_id, decode_event_data(fields)))
            self._next_seq += 1
        return events

    def publish_events(self, events: list[GateEvent], topic_gate: str | None = None) -> mqtt.MQTTMessageInfo:
        return self.client.publish(gate_topic(self.site, topic_gate or self.gate, "events"), encode_events(events), qos=1)

    def publish_raw(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def heartbeat(self, **fields: object) -> mqtt.MQTTMessageInfo:
        return self.client.publish(gate_topic(self.site, self.gate, "heartbeat"), encode_health({"bdseq": self.bdseq, "at": int(time.time() * 1000), **fields}), qos=1)

    def quota_events(self, day: str, slot_start: int, persons: list[int]) -> list[GateEvent]:
        """Admissions (persons > 0) and rollbacks (< 0) counted against the slot's lease, as a gate reports them."""
        events = []
        for count in persons:
            kind = "admission" if count > 0 else "rollback"
            events += self.make_events(1, kind=kind, data={"quota": {"day": day, "slot_start": slot_start, "persons": count}})
            with self.changed:
                self.view.quota_used[(day, slot_start)] = self.view.quota_used.get((day, slot_start), 0) + count
        return events

    def ping(self, next_seq: int | None = None) -> bytes:
        """Ask the hub for a pong; returns the nonce the answer must echo."""
        nonce = os.urandom(16)
        self.client.publish(gate_topic(self.site, self.gate, "ping"), encode_ping(Ping(nonce, self.incarnation, next_seq or self._next_seq)), qos=1)
        return nonce

    def quota_heartbeat(self, at_ms: int | None = None) -> mqtt.MQTTMessageInfo:
        """A heartbeat listing every lease held, with what the gate used of it."""
        with self.changed:
            rows = [lease_report_map(LeaseReport(day, start, lease.slot_end, lease.granted, self.view.quota_used.get((day, start), 0), lease.lease_id, lease.expires_ms))
                    for (day, start), lease in self.view.leases.items()]
        return self.heartbeat(quota=rows, **({} if at_ms is None else {"at": at_ms}))

    def request_snapshot(self, stream: str) -> mqtt.MQTTMessageInfo:
        request = SnapshotRequest(stream, self.tracker.last(stream))
        return self.client.publish(gate_topic(self.site, self.gate, "request"), encode_snapshot_request(request), qos=1)

    # ---- waiting ----

    def wait_for(self, predicate: Callable[[GateView], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.view), timeout)

    # ---- paho callbacks (network thread) ----

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            return
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        client.publish(gate_topic(self.site, self.gate, "birth"), encode_health({"bdseq": self.bdseq, "version": "sim-1", "at": int(time.time() * 1000), "incarnation": self.incarnation}), qos=1)
        with self.changed:
            self.view.connected = True
            self.changed.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list, properties: object) -> None:
        with self.changed:
            self.view.subscribed = all(not code.is_failure for code in reason_codes)
            self.changed.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object) -> None:
        with self.changed:
            self.view.connected = self.view.subscribed = False
            self.view.disconnects += 1
            self.changed.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode, properties: object) -> None:
        with self.changed:
            self.view.pubacks[mid] = reason_code
            self.changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received = time.time()
        try:
            stream = stream_of_hub_topic(self.site, message.topic)
            opened = open_message(message.payload, self.trust, int(received), site=self.site, stream=stream)
        except (MessageError, ValueError) as error:
            with self.changed:
                self.view.refused.append((message.topic, getattr(error, "reason", "topic")))
                self.changed.notify_all()
            return
        with self.changed:
            self._apply(opened, received)
            self.changed.notify_all()

    def _apply(self, message: HubMessage, received: float) -> None:
        """Apply a verified message; its receipt is stamped after verification and application."""
        view = self.view
        verdict = self.tracker.check(message.stream, message.seq)
        if verdict is Verdict.REPLAY and not message.stream.startswith(PONG):
            view.refused.append((message.stream, "replay"))
            return
        if verdict is Verdict.GAP:
            view.gaps.append((message.stream, message.seq))
        if self.keep_messages:
            view.accepted.append(message)
        kind = message.stream.split("/")[0]
        if kind == REVOCATIONS:
            view.revoked.update((entry.ticket_id, entry.expires) for entry in decode_revocations(message.body))
        elif kind == USED:
            view.used.extend(decode_used(message.body))
        elif kind == ACK:
            ack = decode_ack(message.body)
            if ack.incarnation == self.incarnation:
                view.acked_seq = max(view.acked_seq, ack.acked_seq)
        elif kind == PONG:
            view.pongs.append((decode_pong(message.body), message.at_ms))
        elif kind == QUOTA:
            lease = decode_lease(message.body)
            held = view.leases.get((lease.day, lease.slot_start))
            if held is None or lease.lease_id > held.lease_id:
                view.leases[(lease.day, lease.slot_start)] = lease
        elif kind == SNAPSHOT:
            snapshot = self._assembler.add(decode_snapshot_chunk(message.body))
            if snapshot is not None:
                view.snapshots.append(snapshot)
                if snapshot.of == REVOCATIONS:
                    view.revoked = {entry.ticket_id: entry.expires for entry in snapshot.entries}
                self.tracker.reset(snapshot.of, snapshot.as_of)
        if verdict is Verdict.ACCEPT:
            self.tracker.advance(message.stream, message.seq)
        view.receipts.append((message.stream, message.seq, message.at_ms, time.time()))
