"""Privacy by default, end to end: a real `lungta gate run` process with a serial scanner and
a SAM card reader on ptys, the sim turnstile, the real hub over Mosquitto. After one holder
admitted and one impostor refused, nothing an ID could be recovered from is in any file,
log line or MQTT message."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.claims import holder_id_hash
from protocol.holder import bind_holder, resident_check_character, write_site_secret
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket, read_ticket
from hub.broker_files import write_password_file
from hub.local_broker import Broker
from tests.conftest import SITE, make_claims
from tests.gate.idcard.fake_reader import FakeSamReader
from tests.gate.test_daemon import _raw_pty
from tests.hub.conftest import start_hub, write_hub_config

HOLDER = "54010219900101123" + resident_check_character("54010219900101123")
IMPOSTOR = "11010519491231002" + resident_check_character("11010519491231002")
NAME = "扎西次仁"
WAIT = 30.0
SPY = "privacy-spy"  # a login of its own: client ids are bound to logins, so a spy as the hub would take its session


def _broker_with_spy(directory: Path) -> Broker:
    """The site's broker with one more login that may read every topic of the site."""
    broker = Broker(directory, gates=["g1", "g2"])
    broker.users[SPY] = "spy-secret"
    write_password_file(directory / "passwd", broker.users)
    with open(directory / "acl", "a", encoding="utf-8") as acl:
        acl.write(f"\nuser {SPY}\ntopic read lungta/#\n")
    broker.start()
    return broker


class Spy:
    """An MQTT client recording every payload it is allowed to read."""

    def __init__(self, broker, user: str, topics: list[str]) -> None:
        self.payloads: list[bytes] = []
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, broker.password(user))
        self.client.on_message = self._received
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(topic, 1) for topic in topics])
        assert subscribed.wait(WAIT)

    def _received(self, client, userdata, message) -> None:
        with self.changed:
            self.payloads.append(message.topic.encode() + b" " + message.payload)
            self.changed.notify_all()

    def wait_until(self, predicate) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.payloads), WAIT), len(self.payloads)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _gate_config(tmp_path: Path, broker, hub_public: Path, ticket_public: Path, scanner: str, reader: str) -> Path:
    config = tmp_path / "gate" / "gate.toml"
    config.parent.mkdir()
    config.write_text(f"""
[gate]
site = "{SITE}"
id = "g1"
state_dir = "state"
trust = "{ticket_public}"

[[scanner]]
kind = "serial"
port = "{scanner}"

[turnstile]
kind = "sim"
pulse_seconds = 0.01
[turnstile.sim]
output_path = "turnstile.jsonl"
passage_delay_seconds = 0.01

[hub]
trust = "{hub_public}"
host = "{broker.host}"
port = {broker.port}
username = "g1"
password = "{broker.password("g1")}"
heartbeat_seconds = 1

[realname]
check = "required"
secret_file = "{tmp_path / "holder.secret"}"

[[realname.reader]]
kind = "sam"
port = "{reader}"
poll_seconds = 0.05
""", encoding="utf-8")
    return config


def _lines_until(stream, needle: str, seen: list[str]) -> None:
    for line in stream:
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"gate exited before logging {needle!r}")


def _needles(ticket_ids: list[bytes]) -> dict[str, bytes]:
    """Everything an ID could be recovered from: the numbers as text, the name, their plain hashes."""
    needles = {}
    for label, number in (("holder", HOLDER), ("impostor", IMPOSTOR)):
        needles[f"{label} number"] = number.encode()
        needles[f"{label} number UCS-2"] = number.encode("utf-16-le")
        needles[f"{label} number, last 8"] = number[-8:].encode()
        digest = hashlib.sha256(number.encode()).digest()
        needles[f"{label} SHA-256"], needles[f"{label} SHA-256 hex"] = digest[:16], digest.hex()[:32].encode()
        for ticket_id in ticket_ids:
            old = holder_id_hash(ticket_id, number)
            needles[f"{label} old-format hash {ticket_id.hex()}"], needles[f"{label} old-format hex {ticket_id.hex()}"] = old, old.hex().encode()
    needles["name"], needles["name UCS-2"] = NAME.encode(), NAME.encode("utf-16-le")
    return needles


def test_nothing_an_id_could_be_recovered_from_is_kept_logged_or_sent(tmp_path, hub_key, issuer_key, caplog):
    caplog.set_level(logging.DEBUG)
    broker = _broker_with_spy(tmp_path / "broker")
    hub = start_hub(write_hub_config(tmp_path / "hub", broker, hub_key))
    spies = [Spy(broker, SPY, [f"lungta/{SITE}/gate/#", f"lungta/{SITE}/hub/#"])]
    secret = os.urandom(32)
    write_site_secret(tmp_path / "holder.secret", secret)
    _, ticket_public = write_key_pair(issuer_key, tmp_path / "keys", "sales")
    fake = FakeSamReader()
    master, slave = _raw_pty()
    config = _gate_config(tmp_path, broker, tmp_path / "hub" / "keys" / "hub.pub", ticket_public, os.ttyname(slave), fake.device)
    tickets = []
    for _ in range(2):
        now = int(time.time())
        claims = make_claims(not_before=now - 60, expires=now + 3600, holder_name="扎**仁")
        tickets.append(issue_ticket(dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, secret)), issuer_key))
    ticket_ids = [read_ticket(text).claims.ticket_id for text in tickets]
    child = subprocess.Popen([sys.executable, "-m", "lungta", "--log-level", "DEBUG", "gate", "run", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        _lines_until(child.stderr, f"serial:{os.ttyname(slave)}: open", log)
        fake.place(HOLDER, name=NAME)
        os.write(master, tickets[0].encode() + b"\r")
        _lines_until(child.stderr, "visitor GRANT reason=valid", log)
        fake.remove()
        fake.place(IMPOSTOR, name=NAME)
        os.write(master, tickets[1].encode() + b"\r")
        _lines_until(child.stderr, "visitor DENY reason=holder_mismatch", log)
        # holder_check_required, valid, passage, holder_check_required, holder_mismatch
        assert hub.service.wait_for(lambda stats: stats.events_stored >= 5, WAIT), hub.service.stats
        spies[0].wait_until(lambda payloads: any(p.startswith(f"lungta/{SITE}/hub/used".encode()) for p in payloads))  # the admission's used mark, relayed
    finally:
        child.send_signal(signal.SIGTERM)
        _, remaining = child.communicate(timeout=WAIT)
        log.append(remaining)
        hub.stop()
        for spy in spies:
            spy.close()
        broker.stop()
        fake.close()
        os.close(master)
        os.close(slave)
    assert child.returncode == 0, "".join(log)[-2000:]

    haystacks = {str(path.relative_to(tmp_path)): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    haystacks["gate log"] = "".join(log).encode()
    haystacks["test process log (hub)"] = "\n".join(r.getMessage() for r in caplog.records).encode()
    haystacks["MQTT gate <-> hub"] = b"\n".join(spies[0].payloads)
    assert any(name.startswith("gate/state") for name in haystacks) and any(name.startswith("hub/") and ".db" in name for name in haystacks)
    assert ticket_ids[1].hex().encode() in haystacks["gate log"] and spies[0].payloads  # the search looks where the facts are
    found = [f"{needle} in {where}" for needle, value in _needles(ticket_ids).items() for where, data in haystacks.items() if value in data]
    assert not found
