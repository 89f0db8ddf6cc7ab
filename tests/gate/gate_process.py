"""A real ``lungta gate run`` process for fault tests: config on disk, a serial scanner on a pty,
the sim turnstile logging to JSON lines, and its log read line by line so tests wait on it."""

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

from nacl.signing import SigningKey

from protocol.ticket import issue_ticket
from tests.conftest import SITE, make_claims

WAIT = 30.0


def write_config(directory: Path, trust_file: Path, port: str, state_dir: Path, **sim: object) -> Path:
    """gate.toml for one entry+exit gate with the sim turnstile; ``sim`` adds [turnstile] keys."""
    extra = "\n".join(f"{key} = {json.dumps(value)}" for key, value in sim.items())
    config = directory / "gate.toml"
    config.write_text(f"""
[gate]
site = "{SITE}"
id = "east-1"
state_dir = "{state_dir}"
trust = "{trust_file}"

[[scanner]]
kind = "serial"
port = "{port}"
dedupe_seconds = 0.0

[turnstile]
kind = "sim"
pulse_seconds = 0.01
{extra}
[turnstile.sim]
output_path = "{directory / 'turnstile.jsonl'}"
passage_delay_seconds = 0.01
""")
    return config


def live_ticket(key: SigningKey, **claims: object) -> str:
    now = int(time.time())
    return issue_ticket(make_claims(not_before=now - 60, expires=now + 3600, **claims), key)


class ScannerPty:
    """The pty a serial scanner module would be: tests write codes into it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)

    def scan(self, text: str) -> None:
        os.write(self.master, text.encode() + b"\r")

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


_RUNNING: list["GateProcess"] = []


def kill_leftovers() -> None:
    """SIGKILL every gate a test started and left running (it failed before stopping it).

    A leftover daemon's serial reader keeps reopening its port's path, and the
    kernel hands that pty number to the next test: the leftover would take it.
    """
    while _RUNNING:
        gate = _RUNNING.pop()
        if gate.alive():
            gate.kill()


class GateProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.child = subprocess.Popen([sys.executable, "-m", "lungta", "gate", "run", "--config", str(config)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _RUNNING.append(self)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.child.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    def wait_line(self, text: str, count: int = 1, timeout: float = WAIT) -> str:
        """The ``count``-th log line containing ``text``; fails with the log if it does not come."""
        def found() -> list[str]:
            return [line for line in self.lines if text in line]
        with self._changed:
            ok = self._changed.wait_for(lambda: len(found()) >= count or (self.lines and self.lines[-1] == ""), timeout)
            hits = found()
        assert ok and len(hits) >= count, f"no {count}x {text!r} in the gate's log:\n{''.join(self.lines[-40:])}"
        return hits[count - 1]

    def wait_ready(self, port: str) -> None:
        self.wait_line(f"serial:{port}: open")

    @property
    def log(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def alive(self) -> bool:
        return self.child.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.child.send_signal(signal.SIGTERM)
        code = self.child.wait(WAIT)
        self._reader.join(WAIT)
        return code

    def kill(self) -> None:
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(WAIT)
        self._reader.join(WAIT)


def turnstile_log(directory: Path) -> list[dict]:
    path = directory / "turnstile.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def relay_openings(directory: Path) -> int:
    return sum(1 for line in turnstile_log(directory) if line["event"] == "relay" and line.get("on") is True)
