"""The gate's hub link: one worker thread between the MQTT client and the gate's state.

paho's thread only queues what arrives (``transport.mqtt.MqttLink``); this
worker verifies and applies hub messages (``HubInbox``), PUBACKs each one
only after it is applied (so a crash makes the broker deliver it again),
uploads the outbox in acknowledged windows (``Uploader``) and publishes
heartbeats. Birth and death follow Sparkplug: every connection has a
birth/death sequence number (``bdseq``), the birth carries it and the Last
Will (death) of that same connection carries it too, so the hub can tell a
late will of an old connection from the death of the current one.

Hub liveness, not broker liveness: the gate pings the hub every
``ping_seconds`` with a fresh nonce; ``validator.hub_online`` is true only
while signed answers (``Pong``) to its own pings keep coming (within
``hub_timeout_seconds``) and only once this state's incarnation has pulled
full snapshots. A pong is also the only source of hub time (its round trip
bounds the error) and says where the site streams are, so a gate that is
behind asks for the rest at once. The gate decides without the hub: the
offline policy in gate.toml turns "not hub online" into a decision rule.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from protocol.gate_messages import (
    EventData,
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
    scalars,
)
from protocol.hub_messages import Command, Pong
from protocol.messages import NONCE_LENGTH, MessageError
from transport.mqtt import Connected, Inbound, MqttLink
from protocol.topics import BIRTH, DEATH, EVENTS, HEARTBEAT, PING, REQUEST, SITE_STREAMS, USED, gate_client_id, gate_subscriptions, gate_topic
from protocol.trust import TrustStore

from ..cache.revocations import RevocationSet
from ..cache.state import PendingEvent
from ..validator import Validator
from .inbox import SYNCED_KEY, HubInbox
from .settings import SyncSettings
from .uploader import Uploader

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
WAKE = object()
MAX_OUTSTANDING_PINGS = 16
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def software_version() -> str:
    try:
        return version("lungta")
    except PackageNotFoundError:
        return "unknown"


class HubSync:
    """Start with ``start()``, stop with ``stop()``; ``status`` adds the daemon's scanner/relay state to heartbeats."""

    def __init__(
        self,
        settings: SyncSettings,
        validator: Validator,
        revocations: RevocationSet,
        hub_trust: TrustStore,
        on_command: Callable[[Command], None] | None = None,
        status: Callable[[], dict] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.validator = settings, validator
        self.site, self.gate = validator.rules.site, validator.rules.gate_id
        self._clock, self._monotonic = clock, monotonic
        self._on_command = on_command or (lambda command: log.warning("hub command %s ignored: nothing handles it", command.name))
        self._status = status or dict
        self.inbox = HubInbox(validator, revocations, hub_trust, clock)
        self.uploader = Uploader(int(validator.store.get_meta("acked_seq", 0)), settings.window_events, settings.batch_events, settings.resend_after_seconds)
        self._inbound: queue.Queue = queue.Queue()
        validator.on_recorded.append(lambda: self._inbound.put(WAKE))  # upload a new event at once, not at the next poll
        self._next_bdseq = int(validator.store.get_meta("bdseq", 0)) + 1
        self._bdseq = self._next_bdseq
        broker = replace(settings.broker, client_id=settings.broker.client_id or gate_client_id(self.site, self.gate), username=settings.broker.username or self.gate)
        self.link = MqttLink(broker, gate_subscriptions(self.site, self.gate), self._inbound, queue.Queue(), on_connected=self._connected)
        self.link.set_will(gate_topic(self.site, self.gate, DEATH), self._health(DEATH, self._next_bdseq))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot_asked: dict[str, float] = {}
        self._next_heartbeat = 0.0
        self._outbox_dirty = True  # the outbox may hold events not yet sent; cleared when a read comes back short
        self._pings: dict[bytes, float] = {}  # nonce -> monotonic send time, of pings not yet answered
        self._next_ping = 0.0
        self._last_pong: float | None = None
        self.heads: dict[str, int] | None = None  # the site streams' heads per the latest pong
        self.clock_samples = 0
        self.resets = 0
        self.progress = threading.Condition()

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.link.start()
        self._thread = threading.Thread(target=self._run, name="hub-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish this connection's death (a clean DISCONNECT suppresses the will), then disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.link.connected.is_set():
            self.link.publish(gate_topic(self.site, self.gate, DEATH), self._health(DEATH, self._bdseq)).wait_for_publish(timeout)
        self.link.stop()
        self.validator.hub_online = False

    def wait_for(self, predicate: Callable[["HubSync"], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked after every step of the worker) or ``timeout``."""
        with self.progress:
            return self.progress.wait_for(lambda: predicate(self), timeout)

    # ---- paho's thread ---------------------------------------------------------------

    def _connected(self, link: MqttLink) -> None:
        """Birth for this connection (whose will already carries ``_next_bdseq``), and the will for the next."""
        bdseq = self._next_bdseq
        self.validator.store.set_meta("bdseq", bdseq)
        link.publish(gate_topic(self.site, self.gate, BIRTH), self._health(BIRTH, bdseq))
        self._bdseq, self._next_bdseq = bdseq, bdseq + 1
        link.set_will(gate_topic(self.site, self.gate, DEATH), self._health(DEATH, self._next_bdseq))

    # ---- the worker ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._inbound.get(timeout=POLL_SECONDS)
            except queue.Empty:
                item = None
            try:
                if isinstance(item, Connected):
                    self.uploader.on_reconnect()
                    self._outbox_dirty, self._next_heartbeat = True, 0.0
                elif item is WAKE:
                    self._outbox_dirty = True
                elif isinstance(item, Inbound):
                    self._receive(item)
                if self.link.connected.is_set():
                    self._upload()
                    self._heartbeat()
                    self._ping()
                self._update_online()
            except Exception:  # noqa: BLE001 - last guard: the sync thread must outlive any one bad step; logged
                log.exception("hub sync step failed; going on")
            with self.progress:
                self.progress.notify_all()

    def _receive(self, item: Inbound) -> None:
        outcome = self.inbox.handle(item.topic, item.payload)
        self.link.ack(item.mid, item.qos)
        if outcome.acked_seq is not None:
            self.uploader.on_ack(outcome.acked_seq, self._monotonic())
        if outcome.pong is not None and outcome.pong_at_ms is not None:
            self._on_pong(outcome.pong, outcome.pong_at_ms)
        if outcome.snapshot_request is not None:
            self._ask_snapshot(outcome.snapshot_request)
        if outcome.command is not None:
            self._on_command(outcome.command)

    def _ask_snapshot(self, request: SnapshotRequest) -> None:
        now = self._monotonic()
        if now - self._snapshot_asked.get(request.stream, -1e9) < self.settings.snapshot_retry_seconds:
            return
        self._snapshot_asked[request.stream] = now
        self.link.publish(gate_topic(self.site, self.gate, REQUEST), encode_snapshot_request(request))

    def _upload(self) -> None:
        """Publish outbox batches until the window is full or nothing is left.

        The outbox is read only when it may hold unsent events (a new event,
        a reconnect, or the uploader rewinding to resend), not at every poll.
        """
        while True:
            sent = self.uploader.sent
            window = self.uploader.next_batch(self._monotonic())
            if window is None:
                return
            self._outbox_dirty |= window[0] < sent  # rewound: send the unacknowledged events again
            if not self._outbox_dirty:
                return
            events = self.validator.store.pending_events(*window)
            self._outbox_dirty = len(events) == window[1]
            if not events:
                return
            incarnation = self.validator.store.incarnation
            payload = encode_events([self._outgoing(event, incarnation) for event in events])
            self.link.publish(gate_topic(self.site, self.gate, EVENTS), payload)
            self.uploader.published(events[-1].seq, self._monotonic())

    def _outgoing(self, event: PendingEvent, incarnation: bytes) -> GateEvent:
        """The wire form of an outbox event; data the protocol cannot carry is reduced to its scalars, never stuck."""
        try:
            data = decode_event_data(event.data)
        except MessageError as error:
            log.error("event seq %d: data does not fit the protocol (%s); sending its plain fields only", event.seq, error)
            data = EventData(extra=scalars(event.data))
        return GateEvent(event.event_id, self.gate, incarnation, event.seq, EventKind(event.kind), event.at_ms, event.ticket_id, data)

    # ---- liveness, hub time, catch-up, incarnations ---------------------------------------

    def _ping(self) -> None:
        now = self._monotonic()
        if now < self._next_ping:
            return
        self._next_ping = now + self.settings.ping_seconds
        nonce = os.urandom(NONCE_LENGTH)
        self._pings[nonce] = now
        for stale in list(self._pings)[:-MAX_OUTSTANDING_PINGS]:
            del self._pings[stale]
        store = self.validator.store
        self.link.publish(gate_topic(self.site, self.gate, PING), encode_ping(Ping(nonce, store.incarnation, int(store.get_meta("next_seq", 1)))))

    def _on_pong(self, pong: Pong, at_ms: int) -> None:
        """Only an answer to one of our own recent pings counts: liveness, then hub time, then reset and catch-up."""
        sent = self._pings.pop(pong.nonce, None)
        if sent is None:
            log.info("ignored a hub answer to a ping this gate did not send or already had answered")
            return
        now = self._monotonic()
        rtt = now - sent
        self._last_pong = now
        if rtt <= self.settings.max_rtt_seconds:
            self.validator.sync_clock(at_ms / 1000 + rtt / 2)  # the hub answered between send and receipt: error at most rtt/2
            self.clock_samples += 1
        else:
            log.info("hub answer after %.2f s: too slow to set the clock by", rtt)
        store = self.validator.store
        if pong.incarnation != store.incarnation:
            return
        if pong.reset:
            self._start_incarnation()
            return
        self.heads = dict(pong.heads)
        for stream in SITE_STREAMS:
            if not self._synced() or pong.heads.get(stream, 0) > self.inbox.tracker.last(stream):
                if not self._synced() and stream in self.inbox.installed:
                    continue
                self._ask_snapshot(SnapshotRequest(stream, self.inbox.tracker.last(stream)))
        if not self._synced() and set(SITE_STREAMS) <= self.inbox.installed:
            store.set_meta(SYNCED_KEY, store.incarnation)
            log.info("incarnation %s is in step with the hub: full snapshots installed", store.incarnation.hex())

    def _start_incarnation(self) -> None:
        store = self.validator.store
        old = store.incarnation
        new = store.start_incarnation()
        self.resets += 1
        self.inbox.installed.clear()
        self.uploader = Uploader(0, self.settings.window_events, self.settings.batch_events, self.settings.resend_after_seconds)
        self._outbox_dirty = True
        self._snapshot_asked.clear()
        log.warning("gate state reset: the hub holds seqs of incarnation %s this state no longer has; now incarnation %s, pulling full snapshots", old.hex(), new.hex())

    def _synced(self) -> bool:
        store = self.validator.store
        return store.get_meta(SYNCED_KEY) == store.incarnation

    def _live(self) -> bool:
        return self.link.connected.is_set() and self._last_pong is not None and self._monotonic() - self._last_pong <= self.settings.hub_timeout_seconds

    def _update_online(self) -> None:
        online = self._live() and self._synced()
        if online != self.validator.hub_online:
            log.warning("hub %s", "online: answers to pings are arriving" if online else "offline: no answer to pings (or state not yet in step); the offline policy applies")
        self.validator.hub_online = online

    @property
    def caught_up(self) -> bool:
        """In step with the hub: live, snapshots of this incarnation in, and every site stream at the head the hub reported."""
        heads = self.heads
        return self._live() and self._synced() and heads is not None and all(self.inbox.tracker.last(stream) >= heads.get(stream, 0) for stream in SITE_STREAMS)

    def wait_caught_up(self, timeout: float) -> bool:
        """Block until ``caught_up`` or ``timeout``: a restarted gate applies what is queued for it before deciding."""
        caught_up = self.wait_for(lambda sync: sync.caught_up, timeout)
        if not caught_up:
            log.warning("not in step with the hub after %.1f s; deciding with the offline policy until it is", timeout)
        return caught_up

    def _heartbeat(self) -> None:
        now = self._monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.settings.heartbeat_seconds
        self.link.publish(gate_topic(self.site, self.gate, HEARTBEAT), self._health(HEARTBEAT, self._bdseq))

    # ---- health ----------------------------------------------------------------------

    def _health(self, kind: str, bdseq: int) -> bytes:
        store = self.validator.store
        fields: dict = {"bdseq": bdseq, "at": int(self._clock() * 1000), "version": software_version(), "incarnation": store.incarnation, "next_seq": int(store.get_meta("next_seq", 1))}
        if kind != DEATH:
            fields.update(self.health_fields())  # its "at" (the lease clock) replaces the wall time
        return encode_health(fields)

    def health_fields(self) -> dict:
        """What the hub's gate table shows: lags, backlog, clock, leases, devices, disk, temperature."""
        store = self.validator.store
        trusted, offset, lease_clock_ms = self.validator.clock_status()
        fields = {
            "at": lease_clock_ms,
            "rev_seq": self.inbox.tracker.last("revocations"),
            "used_seq": self.inbox.tracker.last(USED),
            "backlog": store.backlog(),
            "clock_trusted": trusted,
            "clock_offset_ms": None if offset is None else round(offset * 1000),
            "hub_online": self.validator.hub_online,
            "quota": [lease_report_map(LeaseReport(*row)) for row in store.quota_leases()],
            "disk_free_mb": shutil.disk_usage(store.path.parent).free // 2**20,
            "temperature_c": _temperature(),
        }
        fields.update(self._status())
        return fields


def _temperature() -> float | None:
    try:
        return int(THERMAL.read_text()) / 1000
    except (OSError, ValueError):
        return None
