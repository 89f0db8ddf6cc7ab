"""The ID check against a real validator and a SAM reader on a real pty."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import pytest

from gate.clock import GateClock
from gate.decision import Reason
from gate.idcard.sam import SamSettings
from gate.realname.check import IdCheck, IdInbox, IdRead
from gate.realname.policy import HolderCheck, RealNamePolicy
from gate.realname.redact import redact_id_reader_logs
from gate.realname.settings import IdCheckSettings, open_id_reader
from gate.rules import Direction, GateRules
from gate.scanner.base import Scan
from gate.scanner.text_lines import LineAssembler
from gate.validator import Validator, open_validator
from protocol.holder import bind_holder, resident_check_character
from protocol.ticket import issue_ticket
from testkit.tickets import SITE, make_claims
from testkit.fake_sam_reader import FakeSamReader

HOLDER = "54010219900101123" + resident_check_character("54010219900101123")
OTHER = "11010519491231002" + resident_check_character("11010519491231002")
SECRET = bytes(range(32))
WAIT = 20.0


@pytest.fixture
def fake():
    reader = FakeSamReader()
    yield reader
    reader.close()


@pytest.fixture
def validator(parts, health, trust) -> Validator:
    rules = GateRules(SITE, gate_id="east-1", realname=RealNamePolicy(HolderCheck.REQUIRED))
    return Validator(rules, trust, parts.store, parts.revocations, parts.clock, parts.hub, health)


@pytest.fixture
def id_check(validator, fake):
    settings = IdCheckSettings((SamSettings(fake.device, poll_seconds=0.02),), SECRET, timeout_seconds=3, before_scan_seconds=2)
    check = IdCheck(validator, [open_id_reader(r) for r in settings.readers], settings)
    check.start()
    yield check
    check.stop()


def _ticket(issuer_key, clock: GateClock) -> str:
    now = clock.read().now
    claims = make_claims(not_before=now - 60, expires=now + 3600)
    return issue_ticket(dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, SECRET)), issuer_key)


def _check(id_check, validator, text, place=None):
    first = validator.scan(text)
    assert first.decision.reason is Reason.HOLDER_CHECK_REQUIRED
    ticks = []
    if place:
        threading.Timer(0, place).start()
    result = id_check.complete(Scan(text, "test", time.monotonic()), Direction.ENTRY, first, lambda: ticks.append(1))
    return result, ticks


def test_the_holders_card_admits_and_the_outcome_is_recorded(issuer_key, validator, id_check, fake, parts):
    result, _ = _check(id_check, validator, _ticket(issuer_key, parts.clock), lambda: fake.place(HOLDER))
    assert result.decision.granted and result.admission is not None
    assert [e.data["reason"] for e in parts.store.pending_events()] == ["holder_check_required", "valid"]


def test_another_persons_card_is_refused(issuer_key, validator, id_check, fake, parts):
    result, _ = _check(id_check, validator, _ticket(issuer_key, parts.clock), lambda: fake.place(OTHER))
    assert result.decision.reason is Reason.HOLDER_MISMATCH and result.admission is None


def test_no_card_in_time_leaves_the_ticket_unused_and_feeds_the_watchdog(issuer_key, validator, id_check, fake, parts):
    text = _ticket(issuer_key, parts.clock)
    result, ticks = _check(id_check, validator, text)
    assert result.decision.reason is Reason.HOLDER_CHECK_REQUIRED and len(ticks) >= 2
    assert "no ID presented within 3 s" in result.decision.detail  # what staff read on the handheld
    fake.place(HOLDER)  # the ticket was not used: it can still be admitted
    result, _ = _check(id_check, validator, text)
    assert result.decision.granted


def test_an_id_read_shortly_before_the_scan_counts_an_older_one_does_not():
    inbox = IdInbox()
    now = time.monotonic()
    inbox.put(IdRead("sam:x", now - 10, HOLDER))
    assert inbox.take(now - 5, time.monotonic() + 0.05, lambda: None) is None
    inbox.put(IdRead("sam:x", now - 1, HOLDER))
    assert inbox.take(now - 5, time.monotonic() + 0.05, lambda: None).number == HOLDER
    assert HOLDER not in repr(IdRead("sam:x", now, HOLDER))


def test_fragments_from_an_id_reader_are_logged_without_the_number(caplog):
    redact_id_reader_logs(["serial:/dev/lungta-idkeypad"])
    caplog.set_level(logging.WARNING)
    for name in ("serial:/dev/lungta-idkeypad", "serial:/dev/lungta-scanner"):
        lines = LineAssembler(b"\r", 64, 0.5, name)
        lines.feed(HOLDER[:10].encode(), 0.0)
        assert lines.feed(b"\r", 5.0).rejected == 1
    id_line, scanner_line = [r.getMessage() for r in caplog.records]
    assert HOLDER[:10] not in id_line and "redacted" in id_line
    assert HOLDER[:10] in scanner_line  # QR scanners keep their diagnostics


def test_a_line_reader_sending_something_else_first_is_ignored_until_a_real_id(issuer_key, validator, parts):
    from gate.scanner.settings import SerialSettings
    from testkit.ptys import RawPty

    cable = RawPty()
    settings = IdCheckSettings((SerialSettings(cable.port),), SECRET, timeout_seconds=5, before_scan_seconds=2)
    check = IdCheck(validator, [open_id_reader(r) for r in settings.readers], settings)
    check.start()
    ignored = threading.Event()
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: "gave something else than an ID" in record.getMessage() and ignored.set()
    logger = logging.getLogger("gate.realname.check")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        def type_it():
            cable.scan("LT1:NOT-AN-ID-NUMBER")  # a ticket shown to the ID reader by mistake
            assert ignored.wait(WAIT)
            cable.scan(HOLDER)
        result, _ = _check(check, validator, _ticket(issuer_key, parts.clock), type_it)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        check.stop()
        cable.close()
    assert ignored.is_set() and result.decision.granted


def test_a_binding_version_this_gate_does_not_know_is_left_to_staff_at_once(issuer_key, trust, tmp_path, fake):
    from protocol.holder import HolderBinding

    rules = GateRules(SITE, gate_id="east-2", realname=RealNamePolicy(HolderCheck.REQUIRED))
    clock = GateClock(0)
    v = open_validator(tmp_path / "state2", rules, trust, clock=clock)
    settings = IdCheckSettings((SamSettings(fake.device, poll_seconds=0.02),), SECRET, timeout_seconds=5, before_scan_seconds=2)
    check = IdCheck(v, [open_id_reader(r) for r in settings.readers], settings)
    check.start()
    try:
        now = clock.read().now
        text = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600, holder_binding=HolderBinding(9, bytes(16))), issuer_key)
        result, ticks = _check(check, v, text)  # no card: the gate must not wait for one it cannot check
        assert result.decision.reason is Reason.HOLDER_CHECK_REQUIRED and not ticks
        assert "v9" in result.decision.detail and "by hand" in result.decision.detail
    finally:
        check.stop()
        v.close()


def test_an_id_typed_on_the_handhelds_keypad_admits_and_a_half_typed_one_is_never_logged(issuer_key, validator, parts, caplog):
    from gate.scanner.hid import HidScanner
    from gate.scanner.settings import HidSettings
    from tests.gate.scanner.test_hid import PipeInputDevice, Port
    from tests.gate.scanner.test_keymap import Keyboard

    caplog.set_level(logging.DEBUG)
    port, keypad = Port(), PipeInputDevice("/dev/input/by-id/usb-keypad-event-kbd")
    port.plugged.put(keypad)
    settings = HidSettings(device=keypad.path, partial_timeout=30.0)
    reader = HidScanner(settings, open_device=port.open)
    check = IdCheck(validator, [reader], IdCheckSettings((settings,), SECRET, timeout_seconds=10, before_scan_seconds=2))
    check.start()
    assert reader.wait_for_health(lambda h: h.ok, WAIT)
    keyboard = Keyboard()

    def staff_type() -> None:
        keypad.type(keyboard.type(OTHER[:10], end="KEY_SPACE"))  # the wrong card's number, abandoned half way
        keyboard.now += 45  # a pause longer than partial_timeout: the fragment is dropped
        keypad.type(keyboard.type(" ".join((HOLDER[:6], HOLDER[6:14], HOLDER[14:].lower()))))  # as printed on the card

    try:
        result, _ = _check(check, validator, _ticket(issuer_key, parts.clock), staff_type)
    finally:
        check.stop()
    assert result.decision.granted and keypad.grabbed  # grabbed: the number never reaches a console
    journal = "\n".join(record.getMessage() for record in caplog.records)
    assert "dropped 11 characters typed without Enter: '<ID redacted>'" in journal
    assert OTHER[:10] not in journal and HOLDER not in journal and HOLDER[:6] not in journal


def test_a_card_read_with_no_ticket_waiting_is_dropped_from_memory(validator, fake):
    from testkit.waiting import wait_until

    settings = IdCheckSettings((SamSettings(fake.device, poll_seconds=0.02),), SECRET, timeout_seconds=3, before_scan_seconds=2)
    check = IdCheck(validator, [open_id_reader(r) for r in settings.readers], settings)
    check.start()
    try:
        fake.place(HOLDER)
        assert fake.wait_reads(1, WAIT)
        wait_until(check.holding_an_id, "the read reaches the ID check", WAIT)
        wait_until(lambda: not check.holding_an_id(), "the unclaimed read is dropped", WAIT)
    finally:
        check.stop()
