"""Supervised workers: a crashed turnstile or scanner thread is noticed, reported, restarted,
and while the turnstile is down nobody is admitted; a part that cannot recover stops the watchdog.

The faults are injected at the lowest layer: a GPIO line whose driver raises an unexpected
error (not the LineError the sensor expects), a serial scanner whose device read raises.
"""

from __future__ import annotations

import socket
import threading

import pytest

from gate.daemon import TURNSTILE, GateDaemon, GateFailed
from gate.display import LogDisplay
from gate.feedback import load_catalogue
from gate.health import Alarm, GateHealth
from gate.rules import Direction, GateRules
from gate.scanner.factory import open_scanner
from gate.scanner.serial_scanner import SerialScanner
from gate.scanner.settings import SerialSettings
from gate.sdnotify import SystemdNotifier
from gate.supervisor import CrashPolicy, PartState, Supervisor
from gate.turnstile.build import build_turnstile
from gate.turnstile.fakeline import FakeLineFactory
from gate.validator import Validator
from testkit.ptys import RawPty
from testkit.tickets import SITE, live_ticket
from tests.gate.turnstile.test_turnstile_gpio import CHIP, ENTRY, SENSOR, gpio_settings
from testkit.visitors import openings, visitors_walk_through_each_opening

WAIT = 20.0


class DriverBug(Exception):
    """What a GPIO library might raise that the sensor code does not expect."""


@pytest.fixture
def scanner_pty():
    port = RawPty()
    yield port
    port.close()


@pytest.fixture
def validator(parts, health, trust) -> Validator:
    return Validator(GateRules(SITE, gate_id="east-1"), trust, parts.store, parts.revocations, parts.clock, parts.hub, health, frozenset({"entry", "exit"}))


def _decisions(daemon: GateDaemon, count: int) -> None:
    with daemon.decided:
        assert daemon.decided.wait_for(lambda: daemon.counters.scans >= count, WAIT), daemon.counters


def _running(daemon: GateDaemon, stop: threading.Event) -> threading.Thread:
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    return runner


def test_a_crashed_turnstile_thread_is_reported_admits_nobody_and_restarts(tmp_path, validator, issuer_key, scanner_pty, parts):
    lines = FakeLineFactory()
    turnstile = build_turnstile(gpio_settings(), lines=lines)
    scanner = open_scanner(SerialSettings(port=scanner_pty.port, dedupe_seconds=0.0))
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], turnstile, LogDisplay(), load_catalogue(), crash_policy=CrashPolicy(first_backoff=8.0))
    sensor, relay = lines.line(CHIP, SENSOR), lines.line(CHIP, ENTRY)
    working_poll = sensor.poll

    def broken_poll(timeout: float) -> bool:
        raise DriverBug("gpio driver returned garbage")

    sensor.poll = broken_poll
    stop = threading.Event()
    runner = _running(daemon, stop)
    try:
        assert scanner.wait_for_health(lambda h: h.ok, WAIT)
        first, second = live_ticket(issuer_key), live_ticket(issuer_key)
        scanner_pty.scan(first)
        assert daemon.supervisor.wait_for(lambda: daemon.supervisor.state(TURNSTILE)[0] is PartState.RESTARTING, WAIT)
        status = daemon.status()
        assert status["relay"].startswith("fault: turnstile worker restarting") and "DriverBug" in status["relay"]
        assert any(name.startswith("worker_down") for name in status["alarms"])
        with daemon.decided:
            assert daemon.decided.wait_for(lambda: daemon.counters.admissions_done >= 1, WAIT)
        scanner_pty.scan(second)  # while the turnstile is down: refused, nothing recorded as used
        _decisions(daemon, 2)
        assert daemon.last_result.decision.reason.value == "internal_error" and not daemon.last_result.decision.granted
        relay.assert_states([False])  # the relay never moved
        sensor.poll = working_poll  # the driver recovers; the supervisor restarts the worker
        assert daemon.supervisor.wait_for(lambda: daemon.supervisor.is_up(TURNSTILE), WAIT)
        assert daemon.status()["relay"] == "ok"
        visitors_walk_through_each_opening(relay, sensor, 2)
        scanner_pty.scan(first)  # rolled back after the crash: the ticket still works
        scanner_pty.scan(second)
        with daemon.decided:
            assert daemon.decided.wait_for(lambda: daemon.counters.admissions_done >= 3, WAIT), daemon.counters
    finally:
        stop.set()
        runner.join(WAIT)
    kinds = [(event.kind, event.data.get("reason")) for event in parts.store.pending_events()]
    assert kinds[:3] == [("admission", "valid"), ("rollback", None), ("deny", "internal_error")]
    assert sorted(kinds[3:]) == [("admission", "valid"), ("admission", "valid"), ("passage", None), ("passage", None)]
    assert openings(relay.states) == 2  # only for the two admissions after the restart


class CrashingSerialScanner(SerialScanner):
    """The real serial scanner whose device read raises an unexpected error the first ``crashes`` times."""

    def __init__(self, settings: SerialSettings, crashes: int) -> None:
        super().__init__(settings)
        self.crashes = crashes

    def _readings(self, stop):
        if self.crashes > 0:
            self.crashes -= 1
            raise DriverBug("usb-serial driver fault")
        yield from super()._readings(stop)


def test_a_crashed_scanner_thread_is_reported_and_restarted(validator, issuer_key, scanner_pty):
    scanner = CrashingSerialScanner(SerialSettings(port=scanner_pty.port, dedupe_seconds=0.0), crashes=1)
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], None, LogDisplay(), load_catalogue(), crash_policy=CrashPolicy(first_backoff=5.0))
    stop = threading.Event()
    runner = _running(daemon, stop)
    part = f"scanner {scanner.source}"
    try:
        assert daemon.supervisor.wait_for(lambda: daemon.supervisor.state(part)[0] is PartState.RESTARTING, WAIT)
        assert "reader restarting" in daemon.status()["scanner"]
        assert not scanner.health().ok and "reader crashed" in scanner.health().detail
        assert daemon.supervisor.wait_for(lambda: daemon.supervisor.is_up(part), WAIT)
        assert scanner.wait_for_health(lambda h: h.ok and h.reopen_count >= 1, WAIT)  # the restarted reader has the port open
        scanner_pty.scan(live_ticket(issuer_key))
        _decisions(daemon, 1)
        assert daemon.last_result.decision.granted and daemon.status()["scanner"] == "ok"
        assert daemon.status()["worker_restarts"] == 1
    finally:
        stop.set()
        runner.join(WAIT)


def test_a_part_that_cannot_recover_stops_the_watchdog_pings(tmp_path, validator, scanner_pty):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(WAIT)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"})
    scanner = CrashingSerialScanner(SerialSettings(port=scanner_pty.port), crashes=100)
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], None, LogDisplay(), load_catalogue(), notifier,
                        crash_policy=CrashPolicy(first_backoff=0.01, max_crashes=3))
    stop = threading.Event()
    runner = _running(daemon, stop)
    try:
        assert listener.recv(64).startswith(b"READY=1")
        assert daemon.supervisor.wait_for(lambda: daemon.supervisor.failed() != [], WAIT)
        listener.settimeout(1.0)
        pings_after = []
        try:
            while True:  # pings sent before the loop saw the failure, then silence
                pings_after.append(listener.recv(64))
        except TimeoutError:
            pass
        assert len(pings_after) <= 2
        assert daemon.health.has_alarm(Alarm.WORKER_FAILED, f"scanner {scanner.source}")
        assert "reader failed" in daemon.status()["scanner"]
    finally:
        stop.set()
        runner.join(WAIT)
        listener.close()


def test_without_a_watchdog_a_part_that_cannot_recover_stops_the_gate(validator, scanner_pty):
    scanner = CrashingSerialScanner(SerialSettings(port=scanner_pty.port), crashes=100)
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], None, LogDisplay(), load_catalogue(), crash_policy=CrashPolicy(first_backoff=0.01, max_crashes=2))
    with pytest.raises(GateFailed, match="scanner"):
        daemon.run(threading.Event())


def test_a_watched_thread_that_dies_fails_at_once():
    supervisor = Supervisor(GateHealth())
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    supervisor.watch("hub-sync", thread.is_alive)
    supervisor.check_watched()
    assert supervisor.failed() == []
    done.set()
    thread.join()
    supervisor.check_watched()
    assert supervisor.failed() == ["hub-sync"]
