"""The production broker config in deploy/mosquitto/, run for real: a throwaway CA and
certificates made with openssl, the config filled in for a temporary directory and a free
loopback port, the real mosquitto, and a paho-mqtt 2.x MQTT v5 client as a gate."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.broker_files import MAX_PACKET_BYTES, acl_text
from testkit.broker import HOST, HUB_USER, SITE, Broker, StartedBrokers

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
WAIT = 10.0
GATE, OTHER_GATE = "east-1", "west-2"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("mosquitto") is None,
                                reason="needs openssl and mosquitto (apt-get install openssl mosquitto)")


@dataclass(frozen=True)
class Pki:
    """A site CA, the broker's certificate (for 127.0.0.1) and a gate's client certificate."""

    directory: Path
    ca: Path
    gate_cert: Path
    gate_key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _issue(directory: Path, name: str, subject: str, extensions: str) -> None:
    """``name``.key and ``name``.crt, signed by the CA in ``directory``: the deploy/README.md commands."""
    (directory / f"{name}.ext").write_text(extensions, encoding="ascii")
    _openssl(directory, "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "lungta-ca.crt", "-CAkey", "lungta-ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("certs")
    _openssl(directory, "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-keyout", "lungta-ca.key", "-out", "lungta-ca.crt", "-days", "2", "-subj", f"/CN=Lungta site {SITE} CA")
    _issue(directory, "broker", "/CN=localhost", "subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    _issue(directory, GATE, f"/CN={GATE}", "extendedKeyUsage = clientAuth\n")
    return Pki(directory, directory / "lungta-ca.crt", directory / f"{GATE}.crt", directory / f"{GATE}.key")


def fill_production_config(template: str, broker: Broker, certs: Path, client_certificates: bool = False) -> str:
    """deploy/mosquitto/mosquitto.conf with its paths moved into the test's directories and
    its listener onto a free loopback port; everything else exactly as shipped."""
    moves = {
        "/etc/mosquitto/certs/": f"{certs}/",
        "/etc/mosquitto/lungta/": f"{broker.directory}/",  # the Broker wrote passwd and acl there
        "/var/lib/mosquitto/": f"{broker.directory / 'data'}/",
        "/var/log/mosquitto/": f"{broker.directory}/",  # mosquitto.log, where Broker.log() reads it
        "\nlistener 8883\n": f"\nlistener {broker.port} {HOST}\n",
    }
    if client_certificates:
        moves.update({"\n#require_certificate true\n": "\nrequire_certificate true\n",
                      "\n#use_identity_as_username true\n": "\nuse_identity_as_username true\n"})
    text = template
    for shipped, here in moves.items():
        assert shipped in text, f"deploy/mosquitto/mosquitto.conf no longer has {shipped.strip()!r}"
        text = text.replace(shipped, here)
    if os.geteuid() == 0:
        text += "user root\n"  # else mosquitto drops to 'mosquitto', who cannot read the 0700 temporary directory
    return text


@pytest.fixture
def site_broker(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., Broker]]:
    """site_broker(client_certificates=False) -> the real mosquitto running the production config."""
    brokers = StartedBrokers(tmp_path)

    def _start(client_certificates: bool = False) -> Broker:
        def production(broker: Broker) -> None:
            template = (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8")
            broker.config.write_text(fill_production_config(template, broker, pki.directory, client_certificates), encoding="utf-8")

        return brokers.start(production, site=SITE, gates=[GATE, OTHER_GATE])

    yield _start
    brokers.close()


class Client:
    """A paho-mqtt 2.x, MQTT v5 client whose callbacks land on one queue, so the test waits
    for each outcome instead of sleeping."""

    def __init__(self, username: str | None = None, password: str | None = None, ca: Path | None = None,
                 cert: Path | None = None, key: Path | None = None, client_id: str | None = None) -> None:
        self.outcomes: queue.Queue[tuple] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{username or 'anonymous'}", protocol=mqtt.MQTTv5)
        if username is not None:
            client.username_pw_set(username, password)
        if ca is not None:
            client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
        client.on_connect = lambda _c, _u, _flags, reason, _p: self.outcomes.put(("connect", reason))
        client.on_connect_fail = lambda _c, _u: self.outcomes.put(("connect failed", None))
        client.on_disconnect = lambda _c, _u, _flags, reason, _p: self.outcomes.put(("disconnect", reason))
        client.on_publish = lambda _c, _u, mid, reason, _p: self.outcomes.put(("puback", mid, reason))
        client.on_subscribe = lambda _c, _u, mid, reasons, _p: self.outcomes.put(("suback", mid, reasons))
        client.on_message = lambda _c, _u, message: self.outcomes.put(("message", message.topic))
        self.client = client

    def connect(self, port: int) -> tuple:
        """The first thing that happens after connecting: ("connect", reason code) once a
        CONNACK came, else ("disconnect", ...) or ("connect failed", None)."""
        self.client.connect_async(HOST, port)
        self.client.loop_start()
        return self.outcomes.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes = b"{}") -> mqtt.ReasonCode:
        """Publish at QoS 1 and return the reason code of the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1)
        outcome = self.outcomes.get(timeout=WAIT)
        assert outcome[:2] == ("puback", info.mid), outcome
        return outcome[2]

    def subscribe(self, topic: str) -> mqtt.ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        outcome = self.outcomes.get(timeout=WAIT)
        assert outcome[:2] == ("suback", mid), outcome
        return outcome[2][0]

    def received(self) -> str:
        """The topic of the next message delivered to this client."""
        outcome = self.outcomes.get(timeout=WAIT)
        assert outcome[0] == "message", outcome
        return outcome[1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def _make(**options: object) -> Client:
        made.append(Client(**options))  # type: ignore[arg-type]
        return made[-1]

    yield _make
    for client in made:
        client.close()


def gate_topic(gate: str, kind: str = "heartbeat") -> str:
    return f"lungta/{SITE}/gate/{gate}/{kind}"


def test_acl_example_is_what_acl_text_generates() -> None:
    assert (DEPLOY / "acl.example").read_text(encoding="utf-8") == acl_text(SITE, HUB_USER)


def test_a_gate_with_its_password_over_tls_publishes_only_on_its_own_topics(site_broker, clients, pki: Pki) -> None:
    broker = site_broker()
    hub = clients(username=HUB_USER, password=broker.password(HUB_USER), ca=pki.ca)
    assert hub.connect(broker.port)[0] == "connect"
    assert str(hub.subscribe(f"lungta/{SITE}/gate/+/heartbeat")) == "Granted QoS 1"
    gate = clients(username=GATE, password=broker.password(GATE), ca=pki.ca)
    kind, reason = gate.connect(broker.port)
    assert (kind, str(reason)) == ("connect", "Success")
    assert str(gate.publish(gate_topic(GATE))) == "Success"
    assert hub.received() == gate_topic(GATE)
    assert str(gate.publish(gate_topic(OTHER_GATE))) == "Not authorized"
    assert str(gate.publish(f"lungta/{SITE}/hub/revocations")) == "Not authorized"  # only the hub signs and sends those


def test_a_gate_receives_its_own_hub_stream_and_not_another_gates(site_broker, clients, pki: Pki) -> None:
    broker = site_broker()
    gate = clients(username=GATE, password=broker.password(GATE), ca=pki.ca)
    assert gate.connect(broker.port)[0] == "connect"
    gate.subscribe(f"lungta/{SITE}/hub/ack/+")  # granted; the ACL is applied to each message delivered
    hub = clients(username=HUB_USER, password=broker.password(HUB_USER), ca=pki.ca)
    assert hub.connect(broker.port)[0] == "connect"
    hub.publish(f"lungta/{SITE}/hub/ack/{OTHER_GATE}")
    hub.publish(f"lungta/{SITE}/hub/ack/{GATE}")
    # One publisher's messages arrive in order: had the first been delivered, it would come first.
    assert gate.received() == f"lungta/{SITE}/hub/ack/{GATE}"


def test_the_hub_publishes_hub_streams_and_not_as_a_gate(site_broker, clients, pki: Pki) -> None:
    broker = site_broker()
    hub = clients(username=HUB_USER, password=broker.password(HUB_USER), ca=pki.ca)
    assert hub.connect(broker.port)[0] == "connect"
    assert not hub.publish(f"lungta/{SITE}/hub/revocations").is_failure  # "No matching subscribers": allowed, nobody listening
    assert str(hub.publish(gate_topic(GATE))) == "Not authorized"


def test_a_wrong_password_is_refused(site_broker, clients, pki: Pki) -> None:
    broker = site_broker()
    kind, reason = clients(username=GATE, password="guessed", ca=pki.ca).connect(broker.port)
    assert kind == "connect" and reason.is_failure and str(reason) in ("Bad user name or password", "Not authorized")


def test_a_plaintext_connection_is_refused(site_broker, clients) -> None:
    broker = site_broker()
    kind, _ = clients(username=GATE, password=broker.password(GATE)).connect(broker.port)
    assert kind in ("disconnect", "connect failed")  # no CONNACK: the listener speaks TLS only


def test_with_client_certificates_the_certificate_names_the_gate(site_broker, clients, pki: Pki) -> None:
    broker = site_broker(client_certificates=True)
    gate = clients(ca=pki.ca, cert=pki.gate_cert, key=pki.gate_key)  # no username, no password
    kind, reason = gate.connect(broker.port)
    assert (kind, str(reason)) == ("connect", "Success")
    assert not gate.publish(gate_topic(GATE)).is_failure  # its CN, east-1, is its username for the ACL
    assert str(gate.publish(gate_topic(OTHER_GATE))) == "Not authorized"
    without = clients(username=GATE, password=broker.password(GATE), ca=pki.ca)
    assert without.connect(broker.port)[0] in ("disconnect", "connect failed")  # a password alone no longer does


def test_a_gate_login_connecting_with_the_hubs_client_id_does_not_kick_the_hub_off(site_broker, clients, pki: Pki) -> None:
    """use_username_as_clientid: the client id a client sends is ignored (issue 10: any gate login took over the hub's session)."""
    broker = site_broker()
    hub = clients(username=HUB_USER, password=broker.password(HUB_USER), ca=pki.ca, client_id=f"lungta-hub-{SITE}")
    assert hub.connect(broker.port)[0] == "connect"
    thief = clients(username=GATE, password=broker.password(GATE), ca=pki.ca, client_id=f"lungta-hub-{SITE}")
    assert thief.connect(broker.port)[0] == "connect"
    assert not thief.publish(gate_topic(GATE)).is_failure
    assert not hub.publish(f"lungta/{SITE}/hub/revocations").is_failure, "the hub's next outcome is its PUBACK, not a disconnect"
    assert "already connected" not in broker.log()


def test_a_packet_over_the_size_limit_is_refused_and_never_reaches_the_hub(site_broker, clients, pki: Pki) -> None:
    broker = site_broker()
    hub = clients(username=HUB_USER, password=broker.password(HUB_USER), ca=pki.ca)
    assert hub.connect(broker.port)[0] == "connect"
    hub.subscribe(f"lungta/{SITE}/gate/+/+")
    gate = clients(username=GATE, password=broker.password(GATE), ca=pki.ca)
    assert gate.connect(broker.port)[0] == "connect"
    gate.client.publish(gate_topic(GATE, "events"), b"x" * (MAX_PACKET_BYTES + 1), qos=1)
    outcome = gate.outcomes.get(timeout=WAIT)
    assert outcome[0] == "disconnect", outcome  # the broker drops a client that sends a packet over max_packet_size
    small = clients(username=OTHER_GATE, password=broker.password(OTHER_GATE), ca=pki.ca)
    assert small.connect(broker.port)[0] == "connect"
    assert str(small.publish(gate_topic(OTHER_GATE), b"x" * 1_000_000)) == "Success"
    assert hub.received() == gate_topic(OTHER_GATE), "the hub's first message is the one under the limit"
