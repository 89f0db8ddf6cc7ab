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
``ping_seconds`` with a fresh nonce; the hub link state (gate/hublink.py) is online only
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
    GateEvent,
    GateSettings,
    Ping,
    SnapshotRequest,
    decode_event_data,
    encode_events,
    encode_health,
    encode_ping,
    encode_snapshot_request,
    gate_settings_map,
    lease_report_map,
    scalars,
)
from protocol.hub_messages import Command, Pong
from protocol.messages import NONCE_LENGTH, MessageError
from transport.mqtt import Connected, Inbound, MqttLink
from protocol.topics import BIRTH, DEATH, EVENTS, HEARTBEAT, PING, REQUEST, SITE_STREAMS, USED, gate_client_id, gate_subscriptions, gate_topic
from protocol.trust import TrustStore

from ..cache.revocations import RevocationSet
from ..cache.records import PendingEvent
from ..cache.state import GateStore
from ..clock import GateClock
from ..hublink import HubLinkState
from ..parts import apply_hub_time
from ..rules import GateRules
from ..trustlist import TrustListKeeper
from .inbox import SYNCED_KEY, HubInbox, Outcome
from .settings import SyncSettings
from .uploader import Uploader

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
MAX_RECEIVE_RUN = 500  # messages handled (and PUBACKed) together: bounds the time before the first PUBACK
WAKE = object()
MAX_OUTSTANDING_PINGS = 16
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def software_version() -> str:
    try:
        return version("lungta")
    except PackageNotFoundError:
        return "unknown"


class HubSync:
    """Start with ``start()``, stop with ``stop()``; ``status`` adds the daemon's scanner/relay state to heartbeats.

    Handed the gate's parts it works on (gate/parts.py), by the composition
    root: it applies hub messages to ``store`` and ``revocations``, sets
    ``clock`` from hub time and ``hub`` from its pings, and uploads what the
    store records. ``wall`` is the time put on messages it sends.
    """

    def __init__(
        self,
        settings: SyncSettings,
        rules: GateRules,
        store: GateStore,
        revocations: RevocationSet,
        clock: GateClock,
        hub: HubLinkState,
        hub_trust: TrustStore,
        on_command: Callable[[Command], None] | None = None,
        status: Callable[[], dict] | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        trust_lists: TrustListKeeper | None = None,
    ) -> None:
        self.settings = settings
        self.site, self.gate = rules.site, rules.gate_id
        self._store, self._clock, self._hub = store, clock, hub
        self._wall, self._monotonic = wall, monotonic
        self._on_command = on_command or (lambda command: log.warning("hub command %s ignored: nothing handles it", command.name))
        self._status = status or dict
        self.inbox = HubInbox(self.site, self.gate, store, revocations, hub_trust, wall, trust_lists=trust_lists)
        self.trust_lists = trust_lists  # its installed version goes into every heartbeat
        self.uploader = Uploader(store.get_count("acked_seq", 0), settings.window_events, settings.batch_events, settings.resend_after_seconds)
        self.claimed = GateSettings(settings.heartbeat_seconds, rules.timezone.key, tuple(key.kid.hex() for key in hub_trust))  # the hub checks they agree
        self._inbound: queue.Queue = queue.Queue()
        store.add_recorded_listener(lambda: self._inbound.put(WAKE))  # upload a new event at once, not at the next poll
        self._next_bdseq = store.get_count("bdseq", 0) + 1
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

    def alive(self) -> bool:
        """Whether the worker thread runs (started and not dead): the daemon's supervisor watches this."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish this connection's death (a clean DISCONNECT suppresses the will), then disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.link.connected.is_set():
            self.link.publish(gate_topic(self.site, self.gate, DEATH), self._health(DEATH, self._bdseq)).wait_for_publish(timeout)
        self.link.stop()
        self._hub.set_online(False)

    def wait_for(self, predicate: Callable[["HubSync"], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked after every step of the worker) or ``timeout``."""
        with self.progress:
            return self.progress.wait_for(lambda: predicate(self), timeout)

    # ---- paho's thread ---------------------------------------------------------------

    def _connected(self, link: MqttLink) -> None:
        """Birth for this connection (whose will already carries ``_next_bdseq``), and the will for the next."""
        bdseq = self._next_bdseq
        self._store.set_meta("bdseq", bdseq)
        link.publish(gate_topic(self.site, self.gate, BIRTH), self._health(BIRTH, bdseq))
        self._bdseq, self._next_bdseq = bdseq, bdseq + 1
        link.set_will(gate_topic(self.site, self.gate, DEATH), self._health(DEATH, self._next_bdseq))

    # ---- the worker ------------------------------------------------------------------

    def _run(self) -> None:
        held = None  # the item that ended the last run of messages, handled next
        while not self._stop.is_set():
            item, held = held, None
            if item is None:
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
                    messages, held = self._queued_behind(item)
                    self._receive(messages)
                if self.link.connected.is_set():
                    self._upload()
                    self._heartbeat()
                    self._ping()
                self._update_online()
            except Exception:  # noqa: BLE001 - last guard: the sync thread must outlive any one bad step; logged
                log.exception("hub sync step failed; going on")
            with self.progress:
                self.progress.notify_all()

    def _queued_behind(self, first: Inbound) -> tuple[list[Inbound], object]:
        """``first`` and the messages queued behind it (at most MAX_RECEIVE_RUN), and the other item that ended the run, if any."""
        messages = [first]
        while len(messages) < MAX_RECEIVE_RUN:
            try:
                item = self._inbound.get_nowait()
            except queue.Empty:
                return messages, None
            if not isinstance(item, Inbound):
                return messages, item
            messages.append(item)
        return messages, None

    def _receive(self, messages: list[Inbound]) -> None:
        """Apply a run of messages (consecutive revocation deltas in one durable write), then PUBACK each."""
        outcomes = self.inbox.handle_many([(item.topic, item.payload) for item in messages])
        for item, outcome in zip(messages, outcomes):
            self.link.ack(item.mid, item.qos)
            self._follow(outcome)

    def _follow(self, outcome: Outcome) -> None:
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
            events = self._store.pending_events(*window)
            self._outbox_dirty = len(events) == window[1]
            if not events:
                return
            incarnation = self._store.incarnation
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
        return GateEvent(event.event_id, self.gate, incarnation, event.seq, event.kind, event.at_ms, event.ticket_id, data)

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
        store = self._store
        self.link.publish(gate_topic(self.site, self.gate, PING), encode_ping(Ping(nonce, store.incarnation, store.get_count("next_seq", 1))))

    def _on_pong(self, pong: Pong, at_ms: int) -> None:
        """Only an answer to one of our own recent pings counts: liveness, then hub time, then reset and catch-up.
        Hub time and a reset are taken from a fast answer only: a slow one speaks of the past."""
        sent = self._pings.pop(pong.nonce, None)
        if sent is None:
            log.info("ignored a hub answer to a ping this gate did not send or already had answered")
            return
        now = self._monotonic()
        rtt = now - sent
        self._last_pong = now
        if rtt <= self.settings.max_rtt_seconds:
            apply_hub_time(self._clock, self._store, at_ms / 1000 + rtt / 2)  # the hub answered between send and receipt: error at most rtt/2
            self.clock_samples += 1
        else:
            log.info("hub answer after %.2f s: too slow to set the clock by", rtt)
        store = self._store
        if pong.incarnation != store.incarnation:
            return
        if pong.reset and rtt <= self.settings.max_rtt_seconds:
            self._start_incarnation()
            return
        if pong.reset:  # a ping held back (a broker outage) names a next seq older than events the hub has had since
            log.info("ignored a reset in a hub answer after %.2f s: only a fresh answer can say this state went backwards", rtt)
        self.heads = dict(pong.heads)
        for stream in SITE_STREAMS:
            if not self._synced() or pong.heads.get(stream, 0) > self.inbox.tracker.last(stream) or self.inbox.waiting_for_snapshot(stream):
                if not self._synced() and stream in self.inbox.installed:
                    continue
                self._ask_snapshot(SnapshotRequest(stream, self.inbox.tracker.last(stream)))
        if not self._synced() and set(SITE_STREAMS) <= self.inbox.installed:
            store.set_meta(SYNCED_KEY, store.incarnation)
            log.info("incarnation %s is in step with the hub: full snapshots installed", store.incarnation.hex())

    def _start_incarnation(self) -> None:
        store = self._store
        old = store.incarnation
        new = store.start_incarnation()
        self.resets += 1
        self.inbox.installed.clear()
        self.uploader = Uploader(0, self.settings.window_events, self.settings.batch_events, self.settings.resend_after_seconds)
        self._outbox_dirty = True
        self._snapshot_asked.clear()
        log.warning("gate state reset: the hub holds seqs of incarnation %s this state no longer has; now incarnation %s, pulling full snapshots", old.hex(), new.hex())

    def _synced(self) -> bool:
        store = self._store
        return store.get_meta(SYNCED_KEY) == store.incarnation

    def _live(self) -> bool:
        return self.link.connected.is_set() and self._last_pong is not None and self._monotonic() - self._last_pong <= self.settings.hub_timeout_seconds

    def _update_online(self) -> None:
        online = self._live() and self._synced()
        if self._hub.set_online(online):
            log.warning("hub %s", "online: answers to pings are arriving" if online else "offline: no answer to pings (or state not yet in step); the offline policy applies")

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
        store = self._store
        fields: dict = {"bdseq": bdseq, "at": int(self._wall() * 1000), "version": software_version(), "incarnation": store.incarnation, "next_seq": store.get_count("next_seq", 1)}
        if kind != DEATH:
            fields.update(self.health_fields())  # its "at" (the lease clock) replaces the wall time
        return encode_health(fields)

    def health_fields(self) -> dict:
        """What the hub's gate table shows: lags, backlog, clock, leases, devices, disk, temperature."""
        store = self._store
        reading = self._clock.read()
        fields = {
            "at": reading.lease_now * 1000,
            "rev_seq": self.inbox.tracker.last("revocations"),
            "used_seq": self.inbox.tracker.last(USED),
            "backlog": store.backlog(),
            "clock_trusted": reading.trusted,
            "clock_offset_ms": None if reading.offset_to_hub is None else round(reading.offset_to_hub * 1000),
            "hub_online": self._hub.online,
            "quota": [lease_report_map(lease) for lease in store.quota_leases()],
            "disk_free_mb": shutil.disk_usage(store.path.parent).free // 2**20,
            "temperature_c": _temperature(),
        }
        if self.trust_lists is not None:
            fields.update(trust_version=self.trust_lists.version, trust_refused=self.trust_lists.refused)
        fields.update(gate_settings_map(self.claimed), session_takeovers=self.link.takeovers())
        fields.update(self._status())
        return fields


def _temperature() -> float | None:
    try:
        return int(THERMAL.read_text()) / 1000
    except (OSError, ValueError):
        return None
