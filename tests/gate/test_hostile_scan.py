"""Hostile codes scanned by a live ``lungta gate run``: the gate keeps running, the relay never moves,
and the next good ticket is granted and pulses (issue 10)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

from fuzz.hostile import hostile_tickets
from fuzz.state import FixedState
from gate.engine import decide
from gate.rules import GateRules, Usage
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket
from tests.conftest import NOW, SITE, make_claims

WAIT = 30.0
GARBAGE_LINES = [b"\xff\xfe\x00\x01 not text", b"LT1:" + b"\xc3\x28" * 10, b"x" * 5000, b"\x1b[2J\x07", b""]


class StderrLines:
    """Collects a child's stderr lines on a thread, so the test waits on what the gate logged."""

    def __init__(self, child: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(child,), daemon=True)
        self._thread.start()

    def _read(self, child: subprocess.Popen) -> None:
        for line in child.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, predicate, what: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.lines), WAIT), f"gave up waiting for {what}; stderr:\n{''.join(self.lines[-30:])}"

    def visitor(self) -> list[str]:
        with self.changed:
            return [line for line in self.lines if "gate.visitor" in line]


def _gate_config(tmp_path: Path, public: Path, port: str) -> Path:
    config = tmp_path / "gate.toml"
    config.write_text(f"""
[gate]
site = "{SITE}"
id = "east-1"
state_dir = "state"
trust = "{public}"

[[scanner]]
kind = "serial"
port = "{port}"
dedupe_seconds = 0

[turnstile]
kind = "sim"
pulse_seconds = 0.01
[turnstile.sim]
output_path = "turnstile.jsonl"
passage_delay_seconds = 0.01
""")
    return config


def _relay_pulses(tmp_path: Path) -> list[dict]:
    path = tmp_path / "turnstile.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["event"] == "relay" and line.get("on") is True]


def test_hostile_codes_on_a_live_gate_are_refused_and_the_next_good_ticket_passes(tmp_path, issuer_key):
    _, public = write_key_pair(issuer_key, tmp_path / "keys", "sales")
    master, slave = pty.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    child = subprocess.Popen([sys.executable, "-m", "lungta", "gate", "run", "--config", str(_gate_config(tmp_path, public, port))], stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        stderr = StderrLines(child)
        stderr.wait_for(lambda lines: any(f"serial:{port}: open" in line for line in lines), "the scanner to open its port")
        now = int(time.time())
        hostile = [text for text in hostile_tickets(issuer_key, now) for _ in range(3)]  # the regex code crashed cbor2 only after a few scans
        for line in GARBAGE_LINES:  # dropped by the scanner's line reader, each with a log line
            os.write(master, line + b"\r")
        for count, text in enumerate(hostile, 1):  # one at a time: a burst beyond the scan queue is dropped by design
            os.write(master, text.encode() + b"\r")
            stderr.wait_for(lambda lines: sum("gate.visitor" in line for line in lines) >= count, f"refusal {count} of {len(hostile)}")
        assert child.poll() is None, "the gate died"
        assert _relay_pulses(tmp_path) == []
        good = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
        os.write(master, good.encode() + b"\r")
        stderr.wait_for(lambda lines: any("GRANT" in line for line in lines), "the good ticket's grant")
        visitor = stderr.visitor()
        assert [line for line in visitor if "DENY" in line and "reason=malformed" in line] == [line for line in visitor if "DENY" in line]
        assert sum("DENY" in line for line in visitor) == len(hostile)
        assert all("GRANT reason=valid" in line for line in visitor[len(hostile):])
        stderr.wait_for(lambda lines: len(_relay_pulses(tmp_path)) >= 1, "the relay pulse for the good ticket")
        assert len(_relay_pulses(tmp_path)) == 1
        assert child.poll() is None
        assert sum("dropped a line" in line for line in stderr.lines) == len([line for line in GARBAGE_LINES if line])
        assert not any("Traceback" in line for line in stderr.lines)
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(WAIT) == 0
        os.close(master)
        os.close(slave)


def test_a_usage_time_beyond_datetime_from_another_gate_is_still_a_decision(issuer_key, trust):
    """A gate relayed a used mark at 2^53 ms (year 287396); showing "used at ..." must not raise."""
    text = issue_ticket(make_claims(), issuer_key)
    state = FixedState(Usage(entries=1, last_at=2**53 // 1000, last_gate="rogue"))
    decision = decide(text, NOW, GateRules(SITE), trust, state)
    assert decision.reason.value == "already_used"
    assert f"Unix time {2**53 // 1000}" in decision.detail
