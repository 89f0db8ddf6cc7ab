"""The whole gate daemon with real parts: camera scanner on a real video file, serial
scanner over a real pty, SQLite state, the sim turnstile on fake lines, sd_notify on a
real socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from gate.daemon import GateDaemon
from gate.display import LogDisplay
from gate.feedback import load_catalogue
from gate.rules import Direction, GateRules
from gate.scanner.factory import open_scanner
from gate.scanner.settings import CameraSettings, SerialSettings
from gate.sdnotify import SystemdNotifier
from gate.turnstile.build import build_turnstile
from gate.turnstile.settings import SimSettings, TurnstileSettings
from gate.validator import Validator
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket
from testkit.live_gate import GateProcess, lungta, relay_openings, write_gate_config
from testkit.ptys import RawPty
from testkit.synthetic_frames import FrameConditions, camera_frame
from testkit.tickets import SITE, live_ticket, make_claims

WAIT = 20.0


def _video(path: Path, segments: list[tuple[str | None, int]]) -> Path:
    """An MJPG video: each (text, frames) segment shows that ticket (or nothing) that long."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    rng = np.random.default_rng(7)
    for text, frames in segments:
        image = camera_frame(text, FrameConditions(tilt_degrees=10, noise_sigma=2), rng)
        for _ in range(frames):
            writer.write(image)
    writer.release()
    return path


class Recorder:
    """A turnstile listener that lets the test wait for events instead of sleeping."""

    def __init__(self) -> None:
        self.events: list = []
        self.changed = threading.Condition()

    def __call__(self, event) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, kind: str, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: sum(e.kind.value == kind for e in self.events) >= count, WAIT), [e.kind.value for e in self.events]


def _wait_decisions(daemon: GateDaemon, count: int) -> None:
    with daemon.decided:
        assert daemon.decided.wait_for(lambda: daemon.counters.scans >= count, WAIT), daemon.counters


def _sim(tmp_path: Path, **sim: object) -> TurnstileSettings:
    return TurnstileSettings(kind="sim", pulse_seconds=0.01, passage_timeout_seconds=0.5, signal_seconds=0.0, sim=SimSettings(output_path=str(tmp_path / "turnstile.jsonl"), passage_delay_seconds=0.01, **sim))


@pytest.fixture
def validator(parts, health, trust) -> Validator:
    return Validator(GateRules(SITE, gate_id="east-1"), trust, parts.store, parts.revocations, parts.clock, parts.hub, health)


def test_video_of_visitors_gives_exactly_the_expected_pulses_and_refusals(tmp_path, issuer_key, validator, parts):
    from nacl.signing import SigningKey

    now = parts.clock.read().now
    adult = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    forged = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), SigningKey.generate())
    pair = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600, persons=2), issuer_key)
    video = _video(tmp_path / "queue.avi", [(None, 5), (adult, 12), (None, 60), (forged, 12), (None, 60), (adult, 12), (None, 60), (pair, 12), (None, 5)])
    recorder = Recorder()
    turnstile = build_turnstile(_sim(tmp_path), listeners=[recorder])
    daemon = GateDaemon(validator, [(open_scanner(CameraSettings(source=str(video))), Direction.ENTRY)], turnstile, LogDisplay(), load_catalogue())
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    _wait_decisions(daemon, 4)
    recorder.wait_for("admit_done", 2)
    stop.set()
    runner.join(WAIT)
    reasons = [e.data["reason"] for e in parts.store.pending_events() if e.kind in ("admission", "deny")]
    assert reasons == ["valid", "unknown_key", "already_used", "valid"]
    lines = [json.loads(line) for line in (tmp_path / "turnstile.jsonl").read_text().splitlines()]
    pulses = [line for line in lines if line["event"] == "relay" and line.get("on") is True and line.get("direction") == "entry"]
    assert len(pulses) == 3  # one for the adult, two for the pair
    assert sum(line["event"] == "refuse" for line in lines) == 2
    assert [e.kind for e in parts.store.pending_events()].count("passage") == 2


def test_nobody_passing_rolls_back_so_the_ticket_still_works(tmp_path, issuer_key, validator, parts):
    now = parts.clock.read().now
    ticket = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    cable = RawPty()
    recorder = Recorder()
    turnstile = build_turnstile(_sim(tmp_path, persons_passing=0), listeners=[recorder])
    scanner = open_scanner(SerialSettings(port=cable.port, dedupe_seconds=0.0))
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], turnstile, LogDisplay(), load_catalogue())
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    assert scanner.wait_for_health(lambda h: h.ok, WAIT)  # pyserial flushes input on open
    cable.scan(ticket)
    recorder.wait_for("admit_done", 1)
    cable.scan(ticket)
    recorder.wait_for("admit_done", 2)
    stop.set()
    runner.join(WAIT)
    cable.close()
    kinds = [e.kind for e in parts.store.pending_events()]
    assert kinds == ["admission", "rollback", "admission", "rollback"]
    assert daemon.counters.rollbacks == 2


def test_a_burst_of_scans_is_bounded_and_the_excess_dropped(tmp_path, issuer_key, validator, mint):
    cable = RawPty()
    scanner = open_scanner(SerialSettings(port=cable.port, dedupe_seconds=0.0))
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], None, LogDisplay(), load_catalogue(), scan_queue_size=4)
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,))
    try:
        with validator._lock:  # the decision loop is stuck behind this while the burst arrives
            runner.start()
            assert scanner.wait_for_health(lambda h: h.ok, WAIT)
            cable.write(b"".join(f"LT1:BURST{i}\r".encode() for i in range(12)))
            assert scanner.wait_for_health(lambda h: h.scan_count >= 12, WAIT)
        with daemon.decided:
            counters = daemon.counters
            assert daemon.decided.wait_for(lambda: counters.scans + counters.dropped_scans == 12, WAIT), counters
    finally:
        stop.set()
        runner.join(WAIT)
        cable.close()
    # the four queued, plus the one the loop may have taken before it blocked
    assert daemon.counters.scans in (4, 5)
    assert daemon.counters.dropped_scans == 12 - daemon.counters.scans


def test_watchdog_pings_stop_when_the_decision_loop_stalls(tmp_path, validator):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(2.0)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"})
    cable = RawPty()
    scanner = open_scanner(SerialSettings(port=cable.port, dedupe_seconds=0.0))
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], None, LogDisplay(), load_catalogue(), notifier)
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    assert listener.recv(64).startswith(b"READY=1")
    assert listener.recv(64) == b"WATCHDOG=1"
    assert scanner.wait_for_health(lambda h: h.ok, WAIT)
    with validator._lock:
        cable.scan("LT1:STALL")
        while True:  # drain pings sent before the loop picked up the scan and blocked
            listener.settimeout(1.0)
            try:
                listener.recv(64)
            except TimeoutError:
                break
    listener.settimeout(2.0)
    assert listener.recv(64) == b"WATCHDOG=1"  # the loop runs again, so do the pings
    stop.set()
    runner.join(WAIT)
    cable.close()
    listener.close()


def test_gate_run_notifies_systemd_decides_and_stops_cleanly_on_sigterm(tmp_path, issuer_key):
    _, public = write_key_pair(issuer_key, tmp_path / "keys", "sales")
    cable = RawPty()
    config = write_gate_config(tmp_path, public, cable.port)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(WAIT)
    gate = GateProcess(config, env=dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify")))
    assert listener.recv(256).startswith(b"READY=1")
    gate.wait_ready(cable.port)
    cable.scan(live_ticket(issuer_key))
    line = gate.wait_line("gate.visitor")
    assert "GRANT reason=valid" in line and "欢迎" in line
    assert gate.stop() == 0
    messages = []
    listener.settimeout(0.5)
    try:
        while True:
            messages.append(listener.recv(256))
    except TimeoutError:
        pass
    assert b"STOPPING=1" in messages
    assert relay_openings(tmp_path) >= 1  # turnstile.jsonl, relative to gate.toml
    cable.close()
    listener.close()


def test_bad_config_stops_gate_run_with_one_line(tmp_path):
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nsite = "potala"\nid = "g"\ntrust = "t.pub"\n[turnstile]\nkind = "gpio"\n')
    result = subprocess.run(lungta("gate", "run", "--config", str(config)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "gate.toml" in result.stderr and "turnstile.gpio: is required when kind is 'gpio'" in result.stderr


def test_a_hub_emergency_command_opens_every_relay_and_shows_in_the_status(tmp_path, validator):
    from protocol.hub_messages import Command

    turnstile = build_turnstile(_sim(tmp_path))
    daemon = GateDaemon(validator, [], turnstile, LogDisplay(), load_catalogue())
    try:
        daemon.on_hub_command(Command("emergency_open", {"on": True, "reason": "fire drill"}))
        assert turnstile.state().emergency and all(turnstile.state().relays.values())
        assert daemon.status()["relay"] == "emergency: command: fire drill"
        daemon.on_hub_command(Command("emergency_open", {"on": False}))
        assert not turnstile.state().emergency and daemon.status()["relay"] == "ok"
        daemon.on_hub_command(Command("self_destruct", {}))  # unknown: logged and ignored
    finally:
        turnstile.shutdown()


class FlakyDisplay:
    """A display whose driver raises on its first use, then works: a fault around the decision, not in it."""

    def __init__(self) -> None:
        self.failures = 1
        self.shown: list[str] = []

    def show(self, decision, message) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("display driver returned garbage")
        self.shown.append(decision.reason.value)


def test_a_fault_around_a_decision_is_refused_counted_and_the_loop_goes_on(tmp_path, issuer_key, validator, parts, caplog):
    """The decision loop's own last guard (issue 10): it must outlive any scan, or a fail-safe gate stays open."""
    now = parts.clock.read().now
    ticket = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    cable = RawPty()
    recorder = Recorder()
    turnstile = build_turnstile(_sim(tmp_path), listeners=[recorder])
    scanner = open_scanner(SerialSettings(port=cable.port, dedupe_seconds=0.0))
    display = FlakyDisplay()
    daemon = GateDaemon(validator, [(scanner, Direction.ENTRY)], turnstile, display, load_catalogue())
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    try:
        assert scanner.wait_for_health(lambda h: h.ok, WAIT)
        cable.scan("LT1:SERR8EAB8AB8AB8AB8AB8AB8AB8K1")  # refused; then showing the refusal fails
        cable.scan(ticket)
        _wait_decisions(daemon, 2)
        recorder.wait_for("admit_done", 1)
    finally:
        stop.set()
        runner.join(WAIT)
        cable.close()
    assert not runner.is_alive()
    assert display.shown == ["internal_error", "valid"], "staff see the fault, then the next visitor's grant"
    assert daemon.health.snapshot().internal_errors == 1
    assert "internal error around the decision: RuntimeError" in caplog.text and "LT1:SERR" not in caplog.text
    assert [e.kind for e in parts.store.pending_events()][:1] == ["deny"]
    assert relay_openings(tmp_path) == 1
