"""The gate's hub link: one worker thread between the MQTT client and the gate's state.

paho's thread only queues what arrives (``protocol.mqtt.MqttLink``); this
worker verifies and applies hub messages (``HubInbox``), PUBACKs each one
only after it is applied (so a crash makes the broker deliver it again),
uploads the outbox in acknowledged windows (``Uploader``) and publishes
heartbeats. Birth and death follow Sparkplug: every connection has a
birth/death sequence number (``bdseq``), the birth carries it and the Last
Will (death) of that same connection carries it too, so the hub can tell a
late will of an old connection from the death of the current one.

The gate decides without the hub: this thread going quiet, or the broker
being away for hours, only makes ``validator.hub_online`` false, which the
offline policy in gate.toml turns into a decision rule.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from protocol.hub_messages import Command

from protocol.gate_messages import GateEvent, SnapshotRequest, encode_events, encode_health, encode_snapshot_request
from protocol.mqtt import Connected, Inbound, MqttLink
from protocol.topics import BIRTH, DEATH, EVENTS, HEARTBEAT, REQUEST, USED, gate_client_id, gate_subscriptions, gate_topic
from protocol.trust import TrustStore

from ..cache.revocations import RevocationSet
from ..validator import Validator
from .inbox import HubInbox
from .settings import SyncSettings
from .uploader import Uploader

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
WAKE = object()
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
                self.validator.hub_online = self.link.connected.is_set()
                if self.link.connected.is_set():
                    self._upload()
                    self._heartbeat()
            except Exception:  # noqa: BLE001 - the sync thread must outlive any one bad step
                log.exception("hub sync step failed; going on")
            with self.progress:
                self.progress.notify_all()

    def _receive(self, item: Inbound) -> None:
        outcome = self.inbox.handle(item.topic, item.payload)
        self.link.ack(item.mid, item.qos)
        if outcome.acked_seq is not None:
            self.uploader.on_ack(outcome.acked_seq, self._monotonic())
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
            payload = encode_events([GateEvent(e.event_id, self.gate, e.seq, e.kind, e.at_ms, e.ticket_id, e.data) for e in events])
            self.link.publish(gate_topic(self.site, self.gate, EVENTS), payload)
            self.uploader.published(events[-1].seq, self._monotonic())

    def _heartbeat(self) -> None:
        now = self._monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.settings.heartbeat_seconds
        self.link.publish(gate_topic(self.site, self.gate, HEARTBEAT), self._health(HEARTBEAT, self._bdseq))

    # ---- health ----------------------------------------------------------------------

    def _health(self, kind: str, bdseq: int) -> bytes:
        fields: dict = {"bdseq": bdseq, "at": int(self._clock() * 1000), "version": software_version()}
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
            "quota": [list(row) for row in store.quota_leases()],
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
