"""Real processes for the console's end-to-end tests: ``lungta hub run`` and ``lungta gate run`` with their logs watched."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import tty
from pathlib import Path

WAIT = 30.0


class Watched:
    """A child process whose stderr is read by a thread, so a test can wait for a line without blocking the child."""

    def __init__(self, args: list[str], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, name=f"stderr {name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_line(self, text: str, timeout: float = WAIT, after: int = 0) -> str:
        """The first line (from index ``after``) containing ``text``; fails with the log so far."""
        with self.changed:
            found = self.changed.wait_for(lambda: next((line for line in self.lines[after:] if text in line), None), timeout)
        assert found, f"{self.name} never logged {text!r}; log:\n{''.join(self.lines[-40:])}"
        return found

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(WAIT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)


def lungta(*args: str) -> list[str]:
    return [sys.executable, "-m", "lungta", *args]


class GateProcess:
    """``lungta gate run`` with a serial scanner on a pty (the test types tickets into it) and the sim turnstile."""

    def __init__(self, directory: Path, site: str, name: str, broker, issuer_pub: Path, hub_pub: Path) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "gate.toml"
        config.write_text(f"""[gate]
site = "{site}"
id = "{name}"
state_dir = "state"
trust = "{issuer_pub}"

[[scanner]]
kind = "serial"
port = "{os.ttyname(self.slave)}"

[turnstile]
kind = "sim"
pulse_seconds = 0.01
[turnstile.sim]
output_path = "turnstile.jsonl"
passage_delay_seconds = 0.01

[hub]
host = "{broker.host}"
port = {broker.port}
password = "{broker.password(name)}"
trust = "{hub_pub}"
heartbeat_seconds = 1
""", encoding="utf-8")
        self.watched = Watched(lungta("--log-level", "INFO", "gate", "run", "--config", str(config)), f"gate {name}")

    def scan(self, text: str) -> int:
        """Type a ticket into the scanner; returns the log position to wait for its decision from."""
        mark = len(self.watched.lines)
        os.write(self.master, text.encode() + b"\r")
        return mark

    def close(self) -> None:
        self.watched.stop()
        os.close(self.master)
        os.close(self.slave)
