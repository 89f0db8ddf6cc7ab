"""A whole site on real processes for fault injection: Mosquitto, ``lungta hub run``, gates.

The broker (with the site ACL, ``testkit.broker.Broker``) runs in the site
namespace; the hub (``lungta hub run``) and each ``lungta gate run`` run in
their own namespaces, each joined to the broker's by its own link
(``testkit.faults.netns``), so the hub can be cut off from the broker while the
gates still reach it. Each gate reads tickets from a serial scanner on a pty that the
harness types into, and drives the sim turnstile, which appends every relay
pulse to ``turnstile.jsonl``. Each process appends its log to one file that
survives its restarts, so the invariant checks can read everything a gate
decided and acted on across a whole run, whatever was killed in between.

Waiting is always on a condition (a log line, a row in a database) polled with
a deadline; nothing here sleeps to synchronise.
"""

from __future__ import annotations

import os
import sqlite3
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from nacl.signing import SigningKey

from hub.config import DEFAULT_TIMEZONE
from gate.validator import input_hash
from testkit.broker import Broker
from protocol.claims import TicketClaims, TimeSlot
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket, new_ticket_id, read_ticket
from testkit.hub_config import write_hub_config

from testkit.waiting import WaitTimeout, wait_until

from .netns import Topology, run_in
from .private_ptys import PrivatePtys

GATES = ("g1", "g2", "g3")
HUB_LINK = "hub"  # the hub's namespace link to the broker, cut like a gate's
WAIT = 45.0
FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
DECISION = re.compile(r"decision (grant|deny) (\w+) ticket=(\S+) persons=(\d+) seq=(\d+)")
REFUSAL = re.compile(r"scan input=([0-9a-f]+) refused: (\w+)")  # nothing could be committed (storage_error, internal_error): no seq




@dataclass(frozen=True)
class Decided:
    """One decision as the gate logged it right after its commit; ``seq`` None: a refusal nothing was committed for."""

    gate: str
    granted: bool
    reason: str
    ticket: str
    persons: int
    seq: int | None


class Process:
    """One daemon, restartable, its stderr appended to ``log`` across restarts."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.log, self.cwd = name, argv, log, cwd
        self.env = dict(os.environ, **(env or {}))
        self.popen: subprocess.Popen | None = None
        self.started_at_offset = 0

    def start(self) -> None:
        self.started_at_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self, since_start: bool = False) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as handle:
            handle.seek(self.started_at_offset if since_start else 0)
            return handle.read().decode("utf-8", errors="replace")


class GateProcess(Process):
    """A ``lungta gate run`` in its namespace, with the pty its serial scanner reads."""

    def __init__(self, name: str, directory: Path, argv: list[str], env: dict[str, str] | None, master: int, port: str) -> None:
        super().__init__(name, argv, directory / "gate.log", directory, env)
        self.directory, self.master, self.port = directory, master, port
        self.state = directory / "state"
        self.faketime = directory / "faketime"

    def wait_ready(self, online: bool = True) -> None:
        """Until the scanner has its port open (and, if ``online``, the broker accepted the gate)."""
        try:
            wait_until(lambda: self._started_and(f"{self.port}: open"), f"gate {self.name} scanner open")
            if online:
                wait_until(lambda: self._started_and("connected to broker"), f"gate {self.name} connected")
        except WaitTimeout as timeout:
            raise WaitTimeout(f"{timeout}; its log ends: {self.text(since_start=True)[-1500:]}") from None

    def _started_and(self, needle: str) -> bool:
        if not self.running:
            raise WaitTimeout(f"gate {self.name} exited with {self.popen.returncode}: {self.text(since_start=True)[-1500:]}")
        return needle in self.text(since_start=True)

    def connections(self) -> int:
        """Connections to the broker this gate has made, over all its runs (from its log)."""
        return self.text().count("connected to broker ")

    def disconnections(self) -> int:
        return self.text().count("disconnected from broker")

    def decisions(self) -> list[Decided]:
        return [Decided(self.name, m[1] == "grant", m[2], m[3], int(m[4]), int(m[5])) for m in DECISION.finditer(self.text())]

    def scan(self, text: str) -> Decided:
        """Type the ticket into the scanner and wait for the gate's decision on it: a committed decision,
        or a refusal the gate could commit nothing for (logged by the hash of the scanned text, never its ticket)."""
        ticket = read_ticket(text).claims.ticket_id.hex()
        digest = input_hash(text)
        before = len(self._outcomes(ticket, digest))
        os.write(self.master, text.encode() + b"\r")
        return wait_until(lambda: self._decision_on(ticket, digest, before), f"gate {self.name} deciding {ticket[:8]}")

    def _outcomes(self, ticket: str, digest: str) -> list[Decided]:
        """Every decision on ``ticket`` and every uncommitted refusal of the text hashed ``digest``, in log order."""
        found = []
        for line in self.text().splitlines():
            if (m := DECISION.search(line)) and m[3] == ticket:
                found.append(Decided(self.name, m[1] == "grant", m[2], m[3], int(m[4]), int(m[5])))
            elif (m := REFUSAL.search(line)) and m[1] == digest:
                found.append(Decided(self.name, False, m[2], ticket, 0, None))
        return found

    def _decision_on(self, ticket: str, digest: str, index: int) -> Decided | None:
        found = self._outcomes(ticket, digest)
        if not self.running:
            raise WaitTimeout(f"gate {self.name} exited with {self.popen.returncode} while deciding {ticket[:8]}: {self.text(since_start=True)[-1500:]}")
        return found[index] if len(found) > index else None

    def step_clock(self, seconds: float) -> None:
        """Offset the gate's wall clock (libfaketime reads the file at every call; monotonic time is untouched)."""
        self.faketime.write_text(f"{seconds:+.0f}\n", encoding="utf-8")


def _reach_broker_at(config: Path, local: str, address: str) -> None:
    """Point the hub config's broker host at the broker's end of the hub's link instead of its local address."""
    text = config.read_text(encoding="utf-8")
    line = f'host = "{local}"'
    assert text.count(line) == 1, f"{config}: expected one line {line}"
    config.write_text(text.replace(line, f'host = "{address}"'), encoding="utf-8")


class Site:
    """The running site. Build with ``Site(directory, ...)``, then ``start()``; ``close()`` always."""

    def __init__(self, directory: Path, gates: tuple[str, ...] = GATES, offline_policy: str = "admit_flagged", passage_delay: float = 0.02, faketime: bool = False) -> None:
        self.directory, self.gate_names, self.offline_policy = directory, gates, offline_policy
        self.issuer = SigningKey.generate()
        _, self.issuer_public = write_key_pair(self.issuer, directory / "keys", "sales")
        self.topology = Topology([*gates, HUB_LINK])
        try:
            self._build(passage_delay, faketime)
        except BaseException:  # nothing half-built outlives a failed construction: undo, then re-raise
            self.topology.destroy()
            raise

    def _build(self, passage_delay: float, faketime: bool) -> None:
        directory, gates = self.directory, self.gate_names
        self.broker = Broker(directory / "broker", gates=list(gates))
        with self.broker.config.open("a", encoding="utf-8") as config:  # the gates reach it over their links
            for link in self.topology.links.values():
                config.write(f"listener {self.broker.port} {link.site_address}\n")
        self.hub_config = write_hub_config(directory / "hub", self.broker, SigningKey.generate(), heartbeat_interval_s=1)
        _reach_broker_at(self.hub_config, self.broker.host, self.topology.links[HUB_LINK].site_address)
        self.hub = Process("hub", [*self.topology.exec_prefix(self.topology.links[HUB_LINK].namespace), sys.executable, "-m", "lungta", "hub", "run", "--config", str(self.hub_config)], directory / "hub" / "hub.log", directory / "hub")
        self._ptys = PrivatePtys(directory / "pts")
        self.gates = {name: self._gate(name, passage_delay, faketime) for name in gates}

    def _gate(self, name: str, passage_delay: float, faketime: bool) -> GateProcess:
        master, port = self._ptys.open()
        directory = self.directory / name
        directory.mkdir()
        link = self.topology.links[name]
        (directory / "gate.toml").write_text(f"""[gate]
site = "{self.broker.site}"
id = "{name}"
state_dir = "state"
trust = "{self.issuer_public}"
[rules]
offline_policy = "{self.offline_policy}"
[[scanner]]
kind = "serial"
port = "{port}"
dedupe_seconds = 0.0
[turnstile]
kind = "sim"
pulse_seconds = 0.01
passage_timeout_seconds = {max(2.0, passage_delay * 4)}
[turnstile.sim]
output_path = "turnstile.jsonl"
passage_delay_seconds = {passage_delay}
[hub]
host = "{link.site_address}"
port = {self.broker.port}
password = "{self.broker.password(name)}"
trust = "{self.directory / 'hub' / 'keys' / 'hub.pub'}"
heartbeat_seconds = 1
resend_after_seconds = 5
""", encoding="utf-8")
        env = None
        if faketime:
            (directory / "faketime").write_text("+0\n", encoding="utf-8")
            env = {"LD_PRELOAD": str(FAKETIME_LIBRARY), "FAKETIME_TIMESTAMP_FILE": str(directory / "faketime"), "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        argv = [*self.topology.exec_prefix(link.namespace), sys.executable, "-m", "lungta", "gate", "run", "--config", str(directory / "gate.toml")]
        return GateProcess(name, directory, argv, env, master, port)

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> "Site":
        self.start_broker()
        self.hub.start()
        for gate in self.gates.values():
            gate.start()
        for gate in self.gates.values():
            gate.wait_ready()
        wait_until(lambda: self.hub_sees_online(self.gate_names), "every gate's birth stored at the hub")
        return self

    def start_broker(self) -> None:
        run_in(self.topology.site, self.broker.start)

    def restart_gate(self, name: str, online: bool = True) -> None:
        gate = self.gates[name]
        gate.start()
        gate.wait_ready(online)

    def close(self) -> None:
        for process in [*self.gates.values(), self.hub]:
            process.stop()
        self.broker.stop()
        self.topology.destroy()
        self._ptys.close()

    # ---- what the harness reads -----------------------------------------------------------

    @property
    def hub_db(self) -> Path:
        return self.directory / "hub" / "hub.db"

    def hub_sees_online(self, gates: tuple[str, ...]) -> bool:
        from .invariants import hub_rows

        try:
            online = {row[0] for row in hub_rows(self.hub_db, "SELECT gate FROM gates WHERE online = 1")}
        except sqlite3.OperationalError:  # no database yet, or the hub is still creating its tables
            return False
        return set(gates) <= online

    def processes(self) -> list[Process]:
        """The hub and the gates (the broker is ``self.broker``, a ``testkit.broker.Broker``)."""
        return [self.hub, *self.gates.values()]

    # ---- tickets -----------------------------------------------------------------------------

    def mint(self, slot: bool = False, entries: int = 1, persons: int = 1, valid_days: int = 3) -> str:
        """A ticket for today signed by the site's issuer key; ``slot``: the whole local day."""
        now = int(time.time())
        claims = TicketClaims(ticket_id=new_ticket_id(), site=self.broker.site, not_before=now - 3600, expires=now + valid_days * 86_400, issued_at=now - 3600,
                              entries=entries, persons=persons, slot=TimeSlot(0, 1440) if slot else None)
        return issue_ticket(claims, self.issuer)

    def set_quota(self, cap: int) -> str:
        """Cap today's whole-day slot (site time) with ``lungta hub quota set``; returns the day."""
        day = datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date().isoformat()
        subprocess.run([sys.executable, "-m", "lungta", "hub", "quota", "set", "--config", str(self.hub_config), "--site", self.broker.site,
                        "--date", day, "--slot", "00:00-24:00", "--cap", str(cap)], check=True, capture_output=True, timeout=60)
        return day
