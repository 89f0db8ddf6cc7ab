"""The MQTT link of the hub and of each gate: one paho-mqtt 2.x client and two queues.

paho's network thread only moves bytes: an incoming PUBLISH becomes an
``Inbound`` on ``inbound``, a broker PUBACK for something we published
becomes a ``Puback`` on ``pubacks``. The hub's worker thread consumes both,
so callbacks never touch the database and never take a lock that paho holds
(``on_publish`` runs under paho's ``_out_message_mutex``).

Sessions are MQTT v5 with ``clean_start=False`` and a session expiry, so
QoS 1 messages for the hub are queued by the broker while it is away, and
``manual_ack=True``: an incoming message is PUBACKed only after the worker
has committed it (``ack``), so a hub crash before the commit makes the broker
deliver it again rather than lose it.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


log = logging.getLogger(__name__)

@dataclass(frozen=True)
class BrokerConfig:
    """Where and as whom to connect; read from hub.toml's [broker] or gate.toml's [hub]."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    session_expiry_s: int = 86_400
    keepalive_s: int = 30
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @property
    def tls(self) -> bool:
        return any((self.cafile, self.certfile, self.keyfile))


RECEIVE_MAXIMUM = 1000
MAX_INFLIGHT_OUT = 1000


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass(frozen=True)
class Puback:
    mid: int
    ok: bool
    reason: str


@dataclass(frozen=True)
class Connected:
    """Marker put on ``inbound`` at every successful (re)connect."""

    session_present: bool


def _no_delay(client: mqtt.Client) -> None:
    """Small messages go out at once: with Nagle on, an ack followed by a used mark waits ~40 ms
    for the broker's delayed ACK, which more than doubles the double-entry window."""
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            log.debug("TCP_NODELAY not set: %s", error)


def guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """Last guard around a paho callback: an exception there would end paho's network thread.

    A disk full in the connect callback once left a gate running for minutes
    with no hub link at all. The error is logged with its traceback and counted
    (``MqttLink.callback_errors``); the link carries on.
    """

    @functools.wraps(callback)
    def run(self: "MqttLink", *args: object) -> None:
        try:
            callback(self, *args)
        except Exception:  # noqa: BLE001 - documented last guard: logged and counted, the network thread lives on
            self.callback_errors += 1
            log.exception("MQTT %s callback failed; the link goes on", callback.__name__.lstrip("_"))

    return run


class MqttLink:
    """A persistent-session MQTT v5 client that hands everything to queues."""

    def __init__(
        self,
        broker: BrokerConfig,
        subscriptions: list[str],
        inbound: queue.Queue,
        pubacks: queue.Queue,
        manual_ack: bool = True,
        on_connected: Callable[["MqttLink"], None] | None = None,
        drop: Callable[[str], bool] | None = None,
    ) -> None:
        """``on_connected`` runs in paho's thread at each connect, before any message of
        the new session is handed on: the place to publish a birth and to set the
        Last Will of the *next* connection (``set_will``). ``drop(topic)``, when
        given, runs in paho's thread for every incoming message: true PUBACKs the
        message at once and hands nothing on (the hub's rate limit, so a flood is
        shed before it can hold the broker's in-flight window)."""
        self._broker = broker
        self._on_connected = on_connected
        self._drop = drop
        self._subscriptions = subscriptions
        self._inbound = inbound
        self._pubacks = pubacks
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.callback_errors = 0
        self._last_state = ""  # the last connection state logged: one line per change, not per retry
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(broker.cafile) if broker.cafile else None, certfile=str(broker.certfile) if broker.certfile else None, keyfile=str(broker.keyfile) if broker.keyfile else None, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(MAX_INFLIGHT_OUT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        self._client = client

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._broker.session_expiry_s
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s, clean_start=False, properties=properties)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """Queue a QoS 1 publish; ``is_published()`` on the result turns true at its PUBACK.

        While disconnected paho keeps the message and sends it on reconnect.
        """
        return self._client.publish(topic, payload, qos=1)

    def set_will(self, topic: str, payload: bytes) -> None:
        """The message the broker publishes if this client vanishes; sent with the next CONNECT."""
        self._client.will_set(topic, payload, qos=1, retain=False)

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK an inbound message once it is durably handled (thread-safe in paho)."""
        self._client.ack(mid, qos)

    def _log_state(self, level: int, state: str) -> None:
        """Log a connection state once per change: a broker away for an hour gives one line, not 3600."""
        if state != self._last_state:
            self._last_state = state
            log.log(level, "%s", state)

    @guarded
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: object, properties: object) -> None:
        if getattr(reason_code, "is_failure", False):
            self._log_state(logging.ERROR, f"broker {self._broker.host}:{self._broker.port} refused the connection: {reason_code} (check username, password and client certificate)")
            return
        self._log_state(logging.INFO, f"connected to broker {self._broker.host}:{self._broker.port}")
        log.debug("session present: %s", flags.session_present)
        _no_delay(client)
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        if self._on_connected is not None:
            self._on_connected(self)
        self.connected.set()
        self._inbound.put(Connected(flags.session_present))

    @guarded
    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        """The TCP or TLS connection itself failed (refused, DNS, TLS verify); paho retries with backoff."""
        self._log_state(logging.ERROR, f"cannot connect to broker {self._broker.host}:{self._broker.port} (refused, unreachable, DNS or TLS verification); retrying with backoff")

    @guarded
    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list, properties: object) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error("broker refused the subscription: %s; check the ACL", ", ".join(failed))
            return
        log.info("subscribed to %s", ", ".join(self._subscriptions))
        self.subscribed.set()

    @guarded
    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self._log_state(logging.WARNING, f"disconnected from broker: {reason_code}; reconnecting with backoff")

    @guarded
    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._drop is not None and self._drop(message.topic):
            client.ack(message.mid, message.qos)
            return
        self._inbound.put(Inbound(message.topic, message.payload, message.mid, message.qos))

    @guarded
    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: object, properties: object) -> None:
        self._pubacks.put(Puback(mid, not getattr(reason_code, "is_failure", False), str(reason_code)))

