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

import functools
import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.bounds import setting

from .link_diagnosis import ConnectFailure, FailureKind, diagnose_closed, diagnose_connack, diagnose_current, listening
from .takeover import BACKOFF_MAX_S, SESSION_TAKEN_OVER, SILENT_WINDOW_S, TakeoverWatch

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class BrokerConfig:
    """Where and as whom to connect; read from hub.toml's [broker] or gate.toml's [hub]."""

    host: str = "127.0.0.1"
    port: int = setting(1883, low=1, high=65535)
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    session_expiry_s: int = setting(7 * 86_400, low=0, high=2**32 - 1)  # a gate away for a week still finds its queue
    keepalive_s: int = setting(30, low=5, high=65535)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @property
    def tls(self) -> bool:
        return any((self.cafile, self.certfile, self.keyfile))


class TlsFileError(Exception):
    """A TLS file the broker settings name cannot be used; ``key`` is its setting (cafile, certfile, keyfile)."""

    def __init__(self, key: str, path: Path, reason: str) -> None:
        super().__init__(f"{key} {path}: {reason}")
        self.key, self.path, self.reason = key, path, reason


def tls_context(broker: BrokerConfig) -> ssl.SSLContext:
    """The TLS context of a link: the site CA verifies the broker (and its host name), the client certificate is ours.

    Loaded here rather than by paho's ``tls_set`` so a file that is not a
    certificate or key is named (``TlsFileError``), not a traceback.
    """
    try:
        context = ssl.create_default_context(cafile=str(broker.cafile) if broker.cafile else None)
    except (ssl.SSLError, OSError) as error:
        raise TlsFileError("cafile", broker.cafile or Path("-"), f"not a PEM CA certificate ({getattr(error, 'reason', None) or error})") from None
    if broker.certfile is not None:
        try:
            context.load_cert_chain(str(broker.certfile), str(broker.keyfile) if broker.keyfile else None)
        except (ssl.SSLError, OSError) as error:
            raise TlsFileError("certfile", broker.certfile, f"not a PEM certificate matching keyfile {broker.keyfile} ({getattr(error, 'reason', None) or error})") from None
    return context


RECEIVE_MAXIMUM = 1000
# Retry a lost broker every 1, 2, then 2 s: after a partition heals the link is back within about 2 s
# (with 30 s a gate stayed away 24 s after the heal). Refused connects cost the broker next to nothing,
# and a full TLS handshake every 2 s from 300 gates is well under one core.
# Retry a lost broker every 1, 2, then 2 s: after a partition heals the link is back within about 2 s
# (with 30 s a gate stayed away 24 s after the heal). Refused connects cost the broker next to nothing,
# and a full TLS handshake every 2 s from 300 gates is well under one core. A takeover backs off on its own.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 2
MAX_INFLIGHT_OUT = 1000
UNSPECIFIED = 128  # paho's reason for a connection that ended without a DISCONNECT


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


class _PahoErrors:
    """paho's logger (``enable_logger``): keeps its last error, the socket error its "Unspecified error" hides.

    Not paho's ``on_log``, which formats every debug line, a cost on each
    message; nothing is logged from here: the cause is logged once per change.
    """

    def __init__(self) -> None:
        self.last: str | None = None

    def log(self, level: int, message: str, *args: object) -> None:
        if level >= logging.ERROR:
            self.last = message % args if args else message


def _no_delay(client: mqtt.Client) -> None:
    """Small messages go out at once: with Nagle on, an ack followed by a used mark waits ~40 ms
    for the broker's delayed ACK, which more than doubles the double-entry window."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # TLS sockets too (ssl.SSLSocket); paho's websocket wrapper has no options
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
        drop: Callable[[str, int], bool] | None = None,
    ) -> None:
        """``on_connected`` runs in paho's thread at each connect, before any message of
        the new session is handed on: the place to publish a birth and to set the
        Last Will of the *next* connection (``set_will``). ``drop(topic, size)``, when
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
        self.failure: ConnectFailure | None = None  # why the link is down now (None while connected or never tried)
        self._session_up = False  # CONNACK accepted on the current connection
        self._failure_reported = False  # the current attempt's cause is already known (a CONNACK refusal)
        self._paho = _PahoErrors()
        self._takeover = TakeoverWatch()
        self.failed_attempts = 0  # connects that failed since the last success (each cause is logged once, not per attempt)
        self._stopping = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set_context(tls_context(broker))
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        client.max_inflight_messages_set(MAX_INFLIGHT_OUT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.enable_logger(self._paho)  # type: ignore[arg-type]  # duck-typed: paho calls only .log(level, fmt, *args)
        self._client = client

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._broker.session_expiry_s
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s, clean_start=False, properties=properties)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a QoS 1 publish; ``is_published()`` on the result turns true at its PUBACK.

        While disconnected paho keeps the message and sends it on reconnect.
        ``retain``: the broker keeps it for every later subscriber (the trust list).
        """
        return self._client.publish(topic, payload, qos=1, retain=retain)

    def set_will(self, topic: str, payload: bytes) -> None:
        """The message the broker publishes if this client vanishes; sent with the next CONNECT."""
        self._client.will_set(topic, payload, qos=1, retain=False)

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK an inbound message once it is durably handled (thread-safe in paho)."""
        self._client.ack(mid, qos)

    def takeovers(self) -> int:
        """How often another client took over this link's session in the last hour (transport/takeover.py)."""
        return self._takeover.count()

    def _log_state(self, level: int, state: str, line: str) -> None:
        """Log a connection state once per change: a broker away for an hour gives one line, not 3600."""
        if state != self._last_state:
            self._last_state = state
            log.log(level, "%s", line)

    def _fail(self, failure: ConnectFailure) -> None:
        """The link is down for ``failure``: logged when the cause changes, kept for ``failure``."""
        self.failure = failure
        self.failed_attempts += 1
        self._takeover.connect_failed()
        self._log_state(logging.ERROR, f"fail:{failure.kind}", failure.line(self._broker.host, self._broker.port))

    @guarded
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: object, properties: object) -> None:
        if getattr(reason_code, "is_failure", False):
            self._failure_reported = True
            self._fail(diagnose_connack(reason_code))
            return
        self._session_up, self.failure, self._paho.last, self.failed_attempts = True, None, None, 0
        self._takeover.connected()
        self._log_state(logging.INFO, "connected", f"connected to broker {self._broker.host}:{self._broker.port}")
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # a takeover sets its own, at the disconnect
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
        """The TCP or TLS connection itself failed; the exception paho is handling names the cause."""
        self._fail(diagnose_current(self._broker.host, self._broker.tls) or diagnose_closed(self._paho.last, self._broker.host, self._broker.port, self._broker.tls))
        self._paho.last = None

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
        session_up, self._session_up = self._session_up, False
        if self._stopping:
            return
        silent = session_up and getattr(reason_code, "value", None) == UNSPECIFIED and not self._paho.last and not getattr(flags, "is_disconnect_packet_from_server", False)
        if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER:
            self._taken_over(client, f"DISCONNECT {reason_code}")
        elif silent and listening(self._broker.host, self._broker.port) and self._takeover.closed_silently():
            self._taken_over(client, f"the broker closed this session without a reason {self._takeover.silent_closes} times in {SILENT_WINDOW_S:.0f} s, letting it straight back in each time")
        elif not session_up:
            if not self._failure_reported:  # closed before any CONNACK: paho says only "Unspecified error"
                self._fail(diagnose_closed(self._paho.last, self._broker.host, self._broker.port, self._broker.tls))
        else:
            reason = "closed by the broker without a reason (a broker restart, or another client logging in as this one)" if silent else str(reason_code)
            self._log_state(logging.WARNING, f"lost:{reason}", f"disconnected from broker {self._broker.host}:{self._broker.port}: {reason}; reconnecting with backoff")
        self._failure_reported, self._paho.last = False, None

    def _taken_over(self, client: mqtt.Client, reason: str) -> None:
        """Another client connected with this client id: back off (doubling) instead of kicking it back each second."""
        backoff = self._takeover.taken_over()
        count = self._takeover.count()
        client.reconnect_delay_set(min_delay=backoff, max_delay=BACKOFF_MAX_S)
        self.failure = ConnectFailure(FailureKind.TAKEN_OVER, reason)
        line = (f"broker {self._broker.host}:{self._broker.port} ended this session ({reason}): cause=session_taken_over takeovers={count} in the last hour;"
                f" another client logs in as user {self._broker.username or '-'} (client id {self._broker.client_id or '-'}):"
                f" a second hub for this site or two gates with one gate id; waiting {backoff} s before reconnecting")
        self._last_state = f"fail:{FailureKind.TAKEN_OVER}"
        log.error("%s", line)  # every takeover: each is a fight between two machines the operator must stop

    @guarded
    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._drop is not None and self._drop(message.topic, len(message.payload)):
            client.ack(message.mid, message.qos)
            return
        self._inbound.put(Inbound(message.topic, bytes(message.payload), message.mid, message.qos))

    @guarded
    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: object, properties: object) -> None:
        self._pubacks.put(Puback(mid, not getattr(reason_code, "is_failure", False), str(reason_code)))

