"""A failed connect is logged once with its cause, however often paho retries (real Mosquitto, real TLS).

Each case starts an ``MqttLink`` against a real broker (or a port where none
listens), waits until it has failed at least three times, and checks that
the log holds exactly one line, naming the cause the installer must fix.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lungta.pki import make_ca, make_server_certificate, write_issued
from transport.mqtt import BrokerConfig, Connected, MqttLink, TlsFileError
from testkit.broker import HOST, free_port

ATTEMPTS = 3
TIMEOUT = 30.0  # paho's backoff: attempts at 0, 1 and 3 s


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A site CA, a broker certificate naming only broker.example (not 127.0.0.1), and a stranger CA."""
    site, stranger = make_ca("potala"), make_ca("elsewhere")
    files = {"ca": tmp_path / "ca.pem", "stranger": tmp_path / "stranger.pem", "cert": tmp_path / "broker.pem", "key": tmp_path / "broker.key"}
    files["ca"].write_bytes(site.certificate)
    files["stranger"].write_bytes(stranger.certificate)
    write_issued(make_server_certificate(site, ["broker.example"]), files["cert"], files["key"])
    return files


@pytest.fixture
def failing_link(caplog: pytest.LogCaptureFixture) -> Iterator:
    """failing_link(config) -> the ERROR lines the link logged over at least ATTEMPTS failed connects."""
    started: list[MqttLink] = []

    def run(config: BrokerConfig) -> list[str]:
        caplog.set_level(logging.INFO, logger="transport.mqtt")
        link = MqttLink(config, [], queue.Queue(), queue.Queue())
        started.append(link)
        link.start()
        deadline = time.monotonic() + TIMEOUT
        while link.failed_attempts < ATTEMPTS:
            assert time.monotonic() < deadline, f"only {link.failed_attempts} failed attempts in {TIMEOUT} s"
            assert not link.connected.wait(0.05), "the link must not connect"
        return [record.getMessage() for record in caplog.records if record.name == "transport.mqtt" and record.levelno >= logging.WARNING]

    yield run
    for link in started:
        link.stop()


def test_a_stopped_broker_port_is_logged_once_as_refused(failing_link):
    port = free_port()
    lines = failing_link(BrokerConfig(HOST, port, "g1", "secret"))
    assert lines == [f"cannot connect to broker {HOST}:{port}: cause=refused (connection refused: nothing listens there); is the broker running and is this its port?"]


def test_a_certificate_for_another_host_is_logged_once_as_a_hostname_mismatch(failing_link, make_broker, tls_files):
    broker = make_broker(["g1"], tls=(tls_files["cert"], tls_files["key"]))
    lines = failing_link(BrokerConfig(HOST, broker.port, "g1", broker.password("g1"), cafile=tls_files["ca"]))
    assert len(lines) == 1 and "cause=tls_hostname_mismatch" in lines[0] and "not valid for '127.0.0.1'" in lines[0]


def test_a_certificate_of_another_ca_is_logged_once_as_an_unknown_ca(failing_link, make_broker, tls_files):
    broker = make_broker(["g1"], tls=(tls_files["cert"], tls_files["key"]))
    lines = failing_link(BrokerConfig(HOST, broker.port, "g1", broker.password("g1"), cafile=tls_files["stranger"]))
    assert len(lines) == 1 and "cause=tls_unknown_ca" in lines[0] and "unable to get local issuer certificate" in lines[0]


def test_plain_mqtt_to_a_tls_port_is_logged_once_as_wanting_tls(failing_link, make_broker, tls_files):
    broker = make_broker(["g1"], tls=(tls_files["cert"], tls_files["key"]))
    lines = failing_link(BrokerConfig(HOST, broker.port, "g1", broker.password("g1")))
    assert len(lines) == 1 and "cause=port_wants_tls" in lines[0] and "set cafile" in lines[0]


def test_wrong_credentials_are_logged_once_with_the_brokers_connack_reason(failing_link, make_broker):
    broker = make_broker(["g1"])
    lines = failing_link(BrokerConfig(HOST, broker.port, "g1", "not-the-password"))
    assert len(lines) == 1 and "cause=not_authorised (CONNACK Not authorized)" in lines[0] and "password_file" in lines[0]


def test_a_name_that_does_not_resolve_is_logged_once_as_name_not_found(failing_link):
    lines = failing_link(BrokerConfig("broker.invalid", 8883, "g1", "secret"))
    assert len(lines) == 1 and "cause=name_not_found" in lines[0] and "'broker.invalid'" in lines[0]


def test_the_site_ca_and_a_certificate_naming_the_host_connect_without_a_failure_line(make_broker, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="transport.mqtt")
    site = make_ca("potala")
    (tmp_path / "site-ca.pem").write_bytes(site.certificate)
    write_issued(make_server_certificate(site, [HOST]), tmp_path / "host.pem", tmp_path / "host.key")
    broker = make_broker(["g1"], tls=(tmp_path / "host.pem", tmp_path / "host.key"))
    link = MqttLink(BrokerConfig(HOST, broker.port, "g1", broker.password("g1"), cafile=tmp_path / "site-ca.pem"), [], queue.Queue(), queue.Queue())
    link.start()
    try:
        assert link.connected.wait(TIMEOUT), f"no TLS connection: {link.failure}"
    finally:
        link.stop()
    assert link.failed_attempts == 0 and not [r for r in caplog.records if r.name == "transport.mqtt" and r.levelno >= logging.WARNING]


def test_a_cafile_that_is_no_certificate_is_named(tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(TlsFileError, match="cafile .*ca.pem: not a PEM CA certificate"):
        MqttLink(BrokerConfig(HOST, 8883, cafile=tmp_path / "ca.pem"), [], queue.Queue(), queue.Queue())


def _expired_certificate(ca, host: str):
    """A broker certificate of the site CA for ``host`` that expired yesterday."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from lungta.pki import Issued

    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(x509.load_pem_x509_certificate(ca.certificate).subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), pem)


def test_an_expired_broker_certificate_is_logged_once_as_expired(failing_link, make_broker, tmp_path):
    site = make_ca("potala")
    (tmp_path / "site-ca.pem").write_bytes(site.certificate)
    write_issued(_expired_certificate(site, HOST), tmp_path / "old.pem", tmp_path / "old.key")
    broker = make_broker(["g1"], tls=(tmp_path / "old.pem", tmp_path / "old.key"))
    lines = failing_link(BrokerConfig(HOST, broker.port, "g1", broker.password("g1"), cafile=tmp_path / "site-ca.pem"))
    assert len(lines) == 1 and "cause=tls_expired" in lines[0] and "certificate has expired" in lines[0]


def test_a_broker_restarted_again_and_again_is_no_takeover(make_broker, caplog):
    caplog.set_level(logging.INFO, logger="transport.mqtt")
    broker = make_broker(["g1"])
    inbound: queue.Queue = queue.Queue()
    link = MqttLink(BrokerConfig(HOST, broker.port, "g1", broker.password("g1")), [], inbound, queue.Queue())
    link.start()
    try:
        assert isinstance(inbound.get(timeout=TIMEOUT), Connected)
        for _ in range(4):
            broker.restart()
            assert isinstance(inbound.get(timeout=TIMEOUT), Connected), "the link reconnects after each restart"
    finally:
        link.stop()
    assert link.takeovers() == 0
    assert not [r for r in caplog.records if r.name == "transport.mqtt" and r.levelno >= logging.ERROR], "a restart is not another client"
