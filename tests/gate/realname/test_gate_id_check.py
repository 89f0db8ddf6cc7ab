"""The gate daemon with a real-name policy: ticket on a serial scanner (pty), card on a SAM
reader (pty), the sim turnstile pulsing or refusing."""

from __future__ import annotations

import dataclasses
import json
import os
import threading

import pytest

from gate.clock import GateClock
from gate.daemon import GateDaemon
from gate.display import LogDisplay
from gate.feedback import load_catalogue
from gate.health import GateHealth
from gate.hublink import HubLinkState
from gate.idcard.sam import SamSettings
from gate.realname.check import IdCheck
from gate.realname.policy import HolderCheck, RealNamePolicy
from gate.realname.settings import IdCheckSettings, open_id_reader
from gate.rules import Direction, GateRules
from gate.scanner.factory import open_scanner
from gate.scanner.settings import SerialSettings
from gate.parts import open_gate_parts
from gate.turnstile.build import build_turnstile
from gate.validator import Validator
from protocol.holder import bind_holder, resident_check_character
from protocol.ticket import issue_ticket
from testkit.tickets import SITE, make_claims
from testkit.fake_sam_reader import FakeSamReader
from tests.gate.test_daemon import WAIT, Recorder, _sim
from testkit.ptys import RawPty

HOLDER = "54010219900101123" + resident_check_character("54010219900101123")
OTHER = "11010519491231002" + resident_check_character("11010519491231002")
SECRET = os.urandom(32)


class ShownDisplay(LogDisplay):
    """The journal display, also remembering the reasons shown so a test can wait for them."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.changed = threading.Condition()

    def show(self, decision, message) -> None:
        super().show(decision, message)
        with self.changed:
            self.shown.append(decision.reason.value)
            self.changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.shown) >= count, WAIT), self.shown


@pytest.fixture
def gate(tmp_path, trust):
    """A running daemon; yields (daemon, the gate's parts, scanner pty, fake reader, turnstile recorder, display)."""
    fake = FakeSamReader()
    cable = RawPty()
    rules = GateRules(SITE, gate_id="east-1", realname=RealNamePolicy(HolderCheck.REQUIRED))
    health = GateHealth()
    parts = open_gate_parts(tmp_path / "state", health, clock=GateClock(0), hub=HubLinkState(online=True))
    validator = Validator(rules, trust, parts.store, parts.revocations, parts.clock, parts.hub, health)
    settings = IdCheckSettings((SamSettings(fake.device, poll_seconds=0.02),), SECRET, timeout_seconds=10, before_scan_seconds=0)
    id_check = IdCheck(validator, [open_id_reader(r) for r in settings.readers], settings)
    id_check.start()
    recorder, display = Recorder(), ShownDisplay()
    scanner = open_scanner(SerialSettings(cable.port))
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], build_turnstile(_sim(tmp_path), listeners=[recorder]), display, load_catalogue(), id_check=id_check)
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    assert scanner.wait_for_health(lambda h: h.ok, WAIT)
    try:
        yield daemon, parts, cable, fake, recorder, display
    finally:
        stop.set()
        runner.join(WAIT)
        id_check.stop()
        parts.close()
        fake.close()
        cable.close()


def _real_name_ticket(issuer_key, clock: GateClock) -> str:
    now = clock.read().now
    claims = make_claims(not_before=now - 60, expires=now + 3600)
    return issue_ticket(dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, SECRET)), issuer_key)


def _scan_and_lay_card(daemon, cable: RawPty, fake, display, text: str, number: str) -> None:
    fake.remove()
    shown = len(display.shown)
    cable.scan(text)
    display.wait_for(shown + 1)
    assert display.shown[-1] == "holder_check_required"  # the gate shows "ID check" and waits for the card
    fake.place(number)
    display.wait_for(shown + 2)


def test_the_holders_card_opens_the_turnstile_anothers_is_refused(tmp_path, issuer_key, gate):
    daemon, parts, cable, fake, recorder, display = gate
    _scan_and_lay_card(daemon, cable, fake, display, _real_name_ticket(issuer_key, parts.clock), HOLDER)
    recorder.wait_for("admit_done", 1)
    _scan_and_lay_card(daemon, cable, fake, display, _real_name_ticket(issuer_key, parts.clock), OTHER)
    assert display.shown == ["holder_check_required", "valid", "holder_check_required", "holder_mismatch"]
    reasons = [e.data["reason"] for e in parts.store.pending_events() if e.kind in ("admission", "deny")]
    assert reasons == ["holder_check_required", "valid", "holder_check_required", "holder_mismatch"]
    assert (daemon.counters.grants, daemon.counters.denials) == (1, 1)
    lines = [json.loads(line) for line in (tmp_path / "turnstile.jsonl").read_text().splitlines()]
    assert sum(line["event"] == "relay" and line.get("on") is True for line in lines) == 1
    assert sum(line["event"] == "refuse" for line in lines) == 1  # only the mismatch; "ID check" is not a refusal


def test_an_unplugged_id_reader_shows_in_the_gates_status(gate):
    from testkit.waiting import wait_until

    daemon, parts, cable, fake, recorder, display = gate
    assert daemon.status()["scanner"] == "ok"
    fake.close()  # the reader's cable is pulled
    wait_until(lambda: "sam:" in daemon.status()["scanner"], "the ID reader's fault in the heartbeat status", WAIT)
