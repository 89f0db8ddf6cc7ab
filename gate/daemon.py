"""The gate daemon: scanners -> validator -> turnstile, as one process.

Threads and queues, explicitly:
- one thread per scanner puts scans on a bounded queue; when it is full the
  scan is dropped and logged (the visitor shows the code again), so a burst
  can never pile up unbounded or delay the visitor in front;
- the decision loop (the thread calling ``run``) takes scans, decides and
  records them, shows the message, and feeds the systemd watchdog: if it
  stalls, the pings stop and systemd restarts the gate;
- one turnstile thread opens for each admission and reports the passage, so
  a slow relay or a slow visitor never blocks decoding or deciding.
On stop (SIGTERM) the scanners stop, scans not yet decided are dropped (they
were never acted on; the visitor shows the code again), the passage in
progress finishes, admissions that never reached the turnstile are rolled
back, and the turnstile is left in its configured fail mode.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from protocol.messages import Command

from .decision import Reason
from .display import Display
from .feedback import VisitorMessage
from .realname.check import IdCheck
from .rules import Direction
from .scanner.base import Scan, Scanner
from .sdnotify import SystemdNotifier
from .turnstile.events import PassageResult
from .validator import Admission, ScanResult, Validator

log = logging.getLogger(__name__)

IDLE_WAKE_SECONDS = 1.0


class Turnstile(Protocol):
    """What the daemon uses of gate.turnstile.Turnstile (there is none in handheld mode)."""

    def admit(self, direction: str, persons: int = 1) -> PassageResult: ...

    def refuse(self) -> None: ...

    def shutdown(self) -> None: ...


@dataclass
class DaemonCounters:
    scans: int = 0
    dropped_scans: int = 0
    grants: int = 0
    denials: int = 0
    rollbacks: int = 0
    admissions_done: int = 0  # admissions the turnstile has finished: passed, or rolled back


class GateDaemon:
    def __init__(
        self,
        validator: Validator,
        scanners: Sequence[tuple[Scanner, Direction]],
        turnstile: Turnstile | None,
        display: Display,
        catalogue: dict[Reason, VisitorMessage],
        notifier: SystemdNotifier | None = None,
        scan_queue_size: int = 16,
        id_check: IdCheck | None = None,
    ) -> None:
        self.validator, self.scanners, self.turnstile = validator, list(scanners), turnstile
        self.display, self.catalogue = display, catalogue
        self.id_check = id_check  # real-name tickets: waits for the holder's ID (gate/realname/check.py)
        self.notifier = notifier or SystemdNotifier({})
        self.counters = DaemonCounters()
        self._scans: queue.Queue[tuple[Scan, Direction]] = queue.Queue(scan_queue_size)
        self._admissions: queue.Queue[Admission | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.decided = threading.Condition()
        self.last_result: ScanResult | None = None

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; returns after an orderly shutdown."""
        scanner_stop = threading.Event()
        for scanner, direction in self.scanners:
            self._start(f"scanner {scanner.source}", self._read_scanner, scanner, direction, scanner_stop)
        if self.turnstile is not None:
            self._start("turnstile", self._drive_turnstile)
        self.notifier.ready(f"gate {self.validator.rules.gate_id} deciding")
        log.info("gate %s ready: %d scanner(s), %s", self.validator.rules.gate_id, len(self.scanners), "turnstile" if self.turnstile else "handheld")
        wake = min(IDLE_WAKE_SECONDS, self.notifier.watchdog_seconds / 2) if self.notifier.watchdog_seconds else IDLE_WAKE_SECONDS
        try:
            while not stop.is_set():
                self.notifier.watchdog()
                try:
                    scan, direction = self._scans.get(timeout=wake)
                except queue.Empty:
                    continue
                self._decide(scan, direction)
        finally:
            self._shutdown(scanner_stop)

    def on_hub_command(self, command: Command) -> None:
        """Operator commands from the hub (signed, verified by the sync client)."""
        if command.name == "emergency_open" and self.turnstile is not None:
            on = command.args.get("on", True) is True
            self.turnstile.set_emergency(on, str(command.args.get("reason", "hub command")))
        else:
            log.warning("hub command %s not supported on this %s; ignored", command.name, "gate" if self.turnstile else "handheld validator")

    def status(self) -> dict:
        """Scanner and relay state for heartbeats: 'ok', or what is wrong."""
        scanners = [scanner.health() for scanner, _ in self.scanners]
        scanner = "ok" if all(h.ok for h in scanners) else "; ".join(h.detail for h in scanners if not h.ok)
        if self.turnstile is None:
            return {"scanner": scanner, "relay": "none"}
        state = self.turnstile.state()
        relay = "emergency: " + state.emergency_reason if state.emergency else "ok" if state.relays_ok and state.sensor_ok else "fault"
        return {"scanner": scanner, "relay": relay, "scans": self.counters.scans, "grants": self.counters.grants, "denials": self.counters.denials}

    def _start(self, name: str, target, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_scanner(self, scanner: Scanner, direction: Direction, stop: threading.Event) -> None:
        for scan in scanner.scans(stop):
            try:
                self._scans.put_nowait((scan, direction))
            except queue.Full:
                log.warning("scan from %s dropped: %d scans already waiting", scan.source, self._scans.qsize())
                with self.decided:
                    self.counters.dropped_scans += 1
                    self.decided.notify_all()

    def _decide(self, scan: Scan, direction: Direction) -> None:
        result = self.validator.scan(scan.text, direction)
        if self.id_check is not None and result.decision.reason is Reason.HOLDER_CHECK_REQUIRED:
            self.display.show(result.decision, self.catalogue[result.decision.reason])  # "ID check"
            result = self.id_check.complete(scan, direction, result, self.notifier.watchdog)
        decision = result.decision
        self.counters.scans += 1
        if decision.granted:
            self.counters.grants += 1
        else:
            self.counters.denials += 1
        if result.admission is not None and self.turnstile is not None:
            self._admissions.put(result.admission)
        elif not decision.granted and self.turnstile is not None:
            self.turnstile.refuse()
        self.display.show(decision, self.catalogue[decision.reason])
        log.debug("decided %s in %.1f ms after the read", decision.reason.value, (time.monotonic() - scan.read_at) * 1000)
        with self.decided:
            self.last_result = result
            self.decided.notify_all()

    def _drive_turnstile(self) -> None:
        while True:
            admission = self._admissions.get()
            if admission is None:
                return
            result = self.turnstile.admit(admission.direction.value, admission.persons)
            if result.error:
                log.error("turnstile fault during admission seq %d: %s", admission.event_seq, result.error)
            self.validator.passage(admission, result.passed)
            with self.decided:
                self.counters.rollbacks += result.passed == 0
                self.counters.admissions_done += 1
                self.decided.notify_all()

    def _shutdown(self, scanner_stop: threading.Event) -> None:
        self.notifier.stopping()
        scanner_stop.set()
        for thread in self._threads:
            if thread.name.startswith("scanner"):
                thread.join(timeout=5)
        if not self._scans.empty():
            log.info("%d scan(s) not decided at shutdown; nothing was recorded or opened for them", self._scans.qsize())
        if self.turnstile is not None:
            self._roll_back_waiting_admissions()
            self._admissions.put(None)
            for thread in self._threads:
                if thread.name == "turnstile":
                    thread.join()
            self.turnstile.shutdown()
        for scanner, _ in self.scanners:
            scanner.close()
        log.info("gate %s stopped: %s", self.validator.rules.gate_id, self.counters)

    def _roll_back_waiting_admissions(self) -> None:
        while True:
            try:
                admission = self._admissions.get_nowait()
            except queue.Empty:
                return
            if admission is not None:
                log.info("admission seq %d never reached the turnstile: rolled back", admission.event_seq)
                self.validator.passage(admission, 0)
                self.counters.rollbacks += 1
