"""A real ``lungta gate run`` (or any ``lungta`` daemon) as a child process, its log watched.

:class:`WatchedProcess` reads a child's stderr on a thread, so a test waits for a log line
(:meth:`WatchedProcess.wait_line`) instead of sleeping or blocking the child on a full pipe.
:class:`GateProcess` is ``lungta gate run --config ...``; :func:`write_gate_config` writes
the gate.toml the tests use (a serial scanner on a :class:`testkit.ptys.RawPty`, the sim
turnstile logging to ``turnstile.jsonl``, optionally a [hub] section from :func:`hub_section`).

Every process started here is remembered until it is stopped: :func:`kill_leftovers` (run
after each test by tests/conftest.py) SIGKILLs whatever a failed test left running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol

from testkit.tickets import SITE

WAIT = 30.0


class BrokerAccount(Protocol):
    """What a gate's [hub] section needs of a broker (``testkit.broker.Broker`` is one)."""

    host: str
    port: int

    def password(self, user: str) -> str: ...


def lungta(*args: str) -> list[str]:
    """The argv of ``lungta ARGS`` run by this interpreter (so it runs this checkout's code)."""
    return [sys.executable, "-m", "lungta", *args]


def hub_section(broker: BrokerAccount, gate_id: str, hub_trust: Path, heartbeat_seconds: float = 1, **options: object) -> str:
    """The [hub] section of gate ``gate_id`` logging in to ``broker``; ``options`` adds keys."""
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    return f"""[hub]
host = "{broker.host}"
port = {broker.port}
username = "{gate_id}"
password = "{broker.password(gate_id)}"
trust = "{hub_trust}"
heartbeat_seconds = {heartbeat_seconds}
{extra}"""


def write_gate_config(directory: Path, trust_file: Path, port: str, state_dir: Path | str = "state", *, gate_id: str = "east-1",
                      site: str = SITE, dedupe_seconds: float = 0.0, sections: str = "", site_root: Path | None = None,
                      **turnstile: object) -> Path:
    """``directory``/gate.toml for one gate reading a serial scanner on ``port`` and driving the sim
    turnstile (its events in ``directory``/turnstile.jsonl). ``turnstile`` adds [turnstile] keys;
    ``sections`` is appended as is ([hub], [realname]...); ``site_root`` pins the site's root key."""
    directory.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in turnstile.items())
    config = directory / "gate.toml"
    config.write_text(f"""[gate]
site = "{site}"
id = "{gate_id}"
state_dir = "{state_dir}"
trust = "{trust_file}"
{f'site_root = "{site_root}"' if site_root is not None else ""}

[[scanner]]
kind = "serial"
port = "{port}"
dedupe_seconds = {dedupe_seconds}

[turnstile]
kind = "sim"
pulse_seconds = 0.01
{extra}
[turnstile.sim]
output_path = "turnstile.jsonl"
passage_delay_seconds = 0.01

{sections}""", encoding="utf-8")
    return config


_RUNNING: list["WatchedProcess"] = []


def kill_leftovers() -> None:
    """SIGKILL every process started here that a test left running (it failed before stopping it).

    A leftover gate's serial reader keeps reopening its port's path, and the kernel hands
    that pty number to the next test: the leftover would take it.
    """
    while _RUNNING:
        process = _RUNNING.pop()
        if process.alive():
            process.kill()


class WatchedProcess:
    """A child whose stderr lines are collected by a thread; the test waits on them."""

    def __init__(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, errors="replace")
        _RUNNING.append(self)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"stderr {name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.child.stderr is not None
        for line in self.child.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    def _ended(self) -> bool:
        return bool(self.lines) and self.lines[-1] == ""

    def wait_line(self, text: str, count: int = 1, timeout: float = WAIT, after: int = 0) -> str:
        """The ``count``-th log line from index ``after`` containing ``text``; fails with the log if it does not come."""
        def found() -> list[str]:
            return [line for line in self.lines[after:] if text in line]
        with self._changed:
            ok = self._changed.wait_for(lambda: len(found()) >= count or self._ended(), timeout)
            hits = found()
        assert ok and len(hits) >= count, f"{self.name}: no {count}x {text!r} in its log:\n{''.join(self.lines[-40:])}"
        return hits[count - 1]

    def wait_for(self, predicate, what: str, timeout: float = WAIT) -> None:
        """Until ``predicate(lines)`` holds; fails naming ``what`` with the log so far."""
        with self._changed:
            ok = self._changed.wait_for(lambda: predicate(self.lines), timeout)
        assert ok, f"{self.name}: gave up waiting for {what}; log:\n{''.join(self.lines[-30:])}"

    def mark(self) -> int:
        """The index of the next log line: ``wait_line(..., after=mark)`` sees only what comes later."""
        with self._changed:
            return len(self.lines)

    @property
    def log(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def alive(self) -> bool:
        return self.child.poll() is None

    def stop(self, timeout: float = WAIT) -> int:
        """SIGTERM and wait (SIGKILL if it does not stop in ``timeout``); its exit code."""
        if self.alive():
            self.child.send_signal(signal.SIGTERM)
        try:
            code = self.child.wait(timeout)
        except subprocess.TimeoutExpired:
            self.child.kill()
            code = self.child.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """SIGKILL: what the process had not committed is lost, as in a power cut."""
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(WAIT)
        self._reader.join(WAIT)


class GateProcess(WatchedProcess):
    """``lungta gate run --config CONFIG``."""

    def __init__(self, config: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        super().__init__(lungta(*options, "gate", "run", "--config", str(config)), f"gate {config.parent.name}", env)

    def wait_ready(self, port: str) -> None:
        """Until the serial scanner has ``port`` open (pyserial flushes input on open: scan after this)."""
        self.wait_line(f"serial:{port}: open")


def turnstile_log(directory: Path) -> list[dict]:
    path = directory / "turnstile.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def relay_openings(directory: Path) -> int:
    """How many times the sim turnstile in ``directory`` switched a relay on."""
    return sum(1 for line in turnstile_log(directory) if line["event"] == "relay" and line.get("on") is True)
