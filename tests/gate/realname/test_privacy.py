"""Privacy by default, end to end: a real `lungta gate run` process with a serial scanner and
a SAM card reader on ptys, the sim turnstile, the real hub over Mosquitto. After one holder
admitted and one impostor refused, nothing an ID could be recovered from is in any file,
log line or MQTT message."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.claims import holder_id_hash
from protocol.holder import bind_holder, resident_check_character, write_site_secret
from protocol.keys import write_key_pair
from protocol.base45 import b45decode
from protocol.errors import BadEncoding
from protocol.ticket import PREFIX, issue_ticket, read_ticket
from hub.broker_files import write_password_file
from testkit.broker import Broker
from testkit.tickets import SITE, make_claims
from testkit.fake_sam_reader import FakeSamReader
from testkit.live_gate import GateProcess, hub_section, write_gate_config
from testkit.ptys import RawPty
from tests.hub.conftest import start_hub
from testkit.hub_config import write_hub_config

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
    realname = f"""[realname]
check = "required"
secret_file = "{tmp_path / "holder.secret"}"

[[realname.reader]]
kind = "sam"
port = "{reader}"
poll_seconds = 0.05
"""
    return write_gate_config(tmp_path / "gate", ticket_public, scanner, gate_id="g1", sections=hub_section(broker, "g1", hub_public) + "\n" + realname)


TICKET_TEXT = re.compile(rb"LT1:[0-9A-Z $%*+\-./:]{20,}")


def _inside_tickets(data: bytes) -> bytes:
    """The COSE bytes of every ticket text in ``data``: an admission event carries the signed
    ticket (the hub verifies it), base45-encoded, where a plain byte search sees nothing."""
    decoded = []
    for match in TICKET_TEXT.finditer(data):
        text = match.group().decode("ascii")[len(PREFIX):]
        for end in (len(text), len(text) - 1, len(text) - 2):  # a trailing space or colon may belong to what follows
            try:
                decoded.append(b45decode(text[:end]))
                break
            except BadEncoding:
                continue
    return b"\n".join(decoded)


def _needles(ticket_ids: list[bytes], photos: list[bytes]) -> dict[str, bytes]:
    """Everything an ID could be recovered from: the numbers as text, the name, their plain
    hashes; and the card's photo, which the reader always sends and the gate must drop."""
    needles = {}
    for index, photo in enumerate(photos):
        needles[f"photo {index}"], needles[f"photo {index} hex"] = photo[:12], photo[:12].hex().encode()
        needles[f"photo {index} middle"] = photo[500:512]
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
    cable = RawPty()
    config = _gate_config(tmp_path, broker, tmp_path / "hub" / "keys" / "hub.pub", ticket_public, cable.port, fake.device)
    tickets = []
    for _ in range(2):
        now = int(time.time())
        claims = make_claims(not_before=now - 60, expires=now + 3600, holder_name="扎**仁")
        tickets.append(issue_ticket(dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, secret)), issuer_key))
    ticket_ids = [read_ticket(text).claims.ticket_id for text in tickets]
    gate = GateProcess(config, "--log-level", "DEBUG")
    try:
        gate.wait_ready(cable.port)
        fake.place(HOLDER, name=NAME)
        cable.scan(tickets[0])
        gate.wait_line("visitor GRANT reason=valid")
        fake.remove()
        fake.place(IMPOSTOR, name=NAME)
        cable.scan(tickets[1])
        gate.wait_line("visitor DENY reason=holder_mismatch")
        # holder_check_required, valid, passage, holder_check_required, holder_mismatch
        assert hub.service.wait_for(lambda stats: stats.events_stored >= 5, WAIT), hub.service.stats
        spies[0].wait_until(lambda payloads: any(p.startswith(f"lungta/{SITE}/hub/used".encode()) for p in payloads))  # the admission's used mark, relayed
    finally:
        code = gate.stop()
        hub.stop()
        for spy in spies:
            spy.close()
        broker.stop()
        fake.close()
        cable.close()
    assert code == 0, gate.log[-2000:]

    haystacks = {str(path.relative_to(tmp_path)): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    haystacks["gate log"] = gate.log.encode()
    haystacks["test process log (hub)"] = "\n".join(r.getMessage() for r in caplog.records).encode()
    haystacks["MQTT gate <-> hub"] = b"\n".join(spies[0].payloads)
    haystacks.update({f"{where} (inside ticket texts)": _inside_tickets(data) for where, data in list(haystacks.items())})
    admitted = read_ticket(tickets[0]).claims.holder_binding
    assert any(name.startswith("hub/") and admitted.digest in data for name, data in haystacks.items())  # the admission's ticket reached the hub: its contents are searched
    assert any(name.startswith("gate/state") for name in haystacks) and any(name.startswith("hub/") and ".db" in name for name in haystacks)
    assert ticket_ids[1].hex().encode() in haystacks["gate log"] and spies[0].payloads  # the search looks where the facts are
    assert len(fake.photos) >= 2  # both cards were read, photo block and all
    found = [f"{needle} in {where}" for needle, value in _needles(ticket_ids, fake.photos).items() for where, data in haystacks.items() if value in data]
    assert not found
