"""The gate daemon: scanners -> validator -> turnstile, as one process.

Threads and queues, explicitly:
- one thread per scanner puts scans on a bounded queue; when it is full the
  scan is dropped and logged (the visitor shows the code again), so a burst
  can never pile up unbounded or delay the visitor in front;
- the decision loop (the thread calling ``run``) takes scans, decides and
  records them, shows the message, and feeds the systemd watchdog: if it
  stalls, or a supervised part cannot recover, the pings stop and systemd
  restarts the gate. It never dies of a scan: a fault while deciding is a
  deny (gate/validator.py), a fault around it is logged and counted here,
  because the end of this loop would leave a fail-safe gate's relays open;
- one turnstile thread opens for each admission and reports the passage, so
  a slow relay or a slow visitor never blocks decoding or deciding. Before
  the relay is commanded the admission is durably marked pulsed, so a crash
  at any instant is settled at the next start (``recover``).
Scanner and turnstile threads run under gate/supervisor.py: a crash is
logged, reported in ``status`` and restarted with backoff; while the
turnstile thread is down every scan is refused (nobody is admitted who could
not pass), and the admissions it held are settled at once.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from protocol.hub_messages import Command, EmergencyOpen

from .decision import Decision, Reason
from .display import Display
from .feedback import VisitorMessage
from .health import GateHealth
from .realname.check import IdCheck
from .rules import Direction
from .scanner.base import Scan, Scanner
from .sdnotify import SystemdNotifier
from .supervisor import CrashPolicy, PartState, Supervisor
from .turnstile.events import PassageResult, TurnstileState
from .validator import STORAGE_FAULTS, Admission, ScanResult, Validator, fault_location, input_hash

log = logging.getLogger(__name__)

IDLE_WAKE_SECONDS = 1.0
PRUNE_EVERY_SECONDS = 60.0  # an idle gate drops a batch of long-expired usage rows this often
PRUNE_BATCH = 1_000  # ~50 ms of SQLite work: the longest a scan arriving meanwhile waits
TURNSTILE = "turnstile"


class GateFailed(Exception):
    """A supervised part cannot recover and no systemd watchdog will restart the gate."""


class Turnstile(Protocol):
    """What the daemon uses of gate.turnstile.Turnstile (there is none in handheld mode)."""

    def admit(self, direction: str, persons: int = 1) -> PassageResult: ...

    def refuse(self) -> None: ...

    def shutdown(self) -> None: ...

    def state(self) -> TurnstileState: ...

    def set_emergency(self, on: bool, reason: str) -> None: ...

    @property
    def confirms_passage(self) -> bool: ...


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
        crash_policy: CrashPolicy = CrashPolicy(),
        id_check: IdCheck | None = None,
    ) -> None:
        self.validator, self.scanners, self.turnstile = validator, list(scanners), turnstile
        self.display, self.catalogue = display, catalogue
        self.id_check = id_check  # real-name tickets: waits for the holder's ID (gate/realname/check.py)
        self.notifier = notifier or SystemdNotifier({})
        self.counters = DaemonCounters()
        self.health: GateHealth = validator.health
        self.supervisor = Supervisor(self.health, crash_policy)
        self._scans: queue.Queue[tuple[Scan, Direction]] = queue.Queue(scan_queue_size)
        self._admissions: queue.Queue[Admission | None] = queue.Queue()
        self._in_turnstile: tuple[Admission, bool] | None = None  # the admission the turnstile works on, and whether it was pulsed
        self.decided = threading.Condition()
        self.last_result: ScanResult | None = None

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; returns after an orderly shutdown.

        Raises GateFailed (after the same orderly shutdown) when a part
        cannot recover and no systemd watchdog is there to restart the gate.
        """
        self.recover()
        scanner_stop, turnstile_stop = threading.Event(), threading.Event()
        for scanner, direction in self.scanners:
            self.supervisor.start(_scanner_part(scanner), partial(self._read_scanner, scanner, direction, scanner_stop), scanner_stop)
        if self.turnstile is not None:
            self.supervisor.start(TURNSTILE, partial(self._drive_turnstile, self.turnstile), turnstile_stop, partial(self._turnstile_crashed, self.turnstile))
        self.notifier.ready(f"gate {self.validator.rules.gate_id} deciding")
        log.info("gate %s ready: %d scanner(s), %s", self.validator.rules.gate_id, len(self.scanners), "turnstile" if self.turnstile else "handheld")
        wake = min(IDLE_WAKE_SECONDS, self.notifier.watchdog_seconds / 2) if self.notifier.watchdog_seconds else IDLE_WAKE_SECONDS
        failed: list[str] = []
        try:
            failed = self._loop(stop, wake)
        finally:
            self._shutdown(scanner_stop, turnstile_stop)
        if failed:
            raise GateFailed(f"part(s) cannot recover: {', '.join(failed)}")

    def recover(self) -> None:
        """Settle admissions the last run left open (a crash between commit and passage)."""
        confirms = self.turnstile.confirms_passage if self.turnstile is not None else False
        self.counters.rollbacks += self.validator.recover_open_admissions(confirms)

    def watch(self, name: str, alive: Callable[[], bool]) -> None:
        """Have the supervisor watch a thread owned elsewhere (the hub link): if it dies, the gate restarts."""
        self.supervisor.watch(name, alive)

    def on_hub_command(self, command: Command) -> None:
        """Operator commands from the hub (signed, verified by the sync client)."""
        if command.name == "emergency_open" and self.turnstile is not None:
            emergency = EmergencyOpen.of(command)
            self.turnstile.set_emergency(emergency.on, emergency.reason)
        else:
            log.warning("hub command %s not supported on this %s; ignored", command.name, "gate" if self.turnstile else "handheld validator")

    def status(self) -> dict:
        """Scanner and relay state for heartbeats ('ok', or what is wrong), counters and health alarms."""
        problems = []
        for scanner, _ in self.scanners:
            state, error = self.supervisor.state(_scanner_part(scanner))
            health = scanner.health()
            if state is not PartState.UP:
                problems.append(f"{scanner.source}: reader {state.value}: {error}")
            elif not health.ok:
                problems.append(health.detail)
        if self.id_check is not None:  # an ID reader that is gone turns every real-name visitor away: say so
            problems += [health.detail for health in self.id_check.health() if not health.ok]
        status = {"scanner": "; ".join(problems) or "ok", **self.health.snapshot().as_status()}
        if self.turnstile is None:
            return {**status, "relay": "none"}
        return {**status, "relay": self._relay_status(self.turnstile), "scans": self.counters.scans, "grants": self.counters.grants, "denials": self.counters.denials}

    def _relay_status(self, turnstile: Turnstile) -> str:
        state = turnstile.state()
        if state.emergency:
            return "emergency: " + state.emergency_reason
        worker, error = self.supervisor.state(TURNSTILE)
        if worker is not PartState.UP:
            return f"fault: turnstile worker {worker.value}: {error}"
        return "ok" if state.relays_ok and state.sensor_ok else "fault"

    # -- the decision loop ------------------------------------------------------------

    def _loop(self, stop: threading.Event, wake: float) -> list[str]:
        """Decide scans until ``stop``; returns the failed parts when it must give up (no watchdog to stop)."""
        next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        while not stop.is_set():
            self.supervisor.check_watched()
            failed = self.supervisor.failed()
            if not failed:
                self.notifier.watchdog()
            elif self.notifier.watchdog_seconds is None:
                log.critical("part(s) %s cannot recover and no systemd watchdog is set: stopping the gate", ", ".join(failed))
                return failed
            try:
                scan, direction = self._scans.get(timeout=wake)
            except queue.Empty:
                if time.monotonic() >= next_prune:
                    more = self._prune()  # a full batch: more are waiting, go on at the next idle wake
                    next_prune = time.monotonic() + (0.0 if more else PRUNE_EVERY_SECONDS)
                continue
            self._decide_guarded(scan, direction)
        return []

    def _prune(self) -> bool:
        """One small batch of expired usage, only while idle; True when the batch was full."""
        try:
            pruned = self.validator.prune_expired_usage(PRUNE_BATCH)
        except STORAGE_FAULTS as exc:
            log.warning("pruning expired usage failed: %s", exc)
            return False
        if pruned:
            log.debug("pruned %d usage row(s) of long-expired tickets", pruned)
        return pruned >= PRUNE_BATCH

    def _decide_guarded(self, scan: Scan, direction: Direction) -> None:
        """The loop's last guard: whatever goes wrong around one scan, refuse it and go on."""
        try:
            self._decide(scan, direction)
        except Exception as exc:  # documented last guard: the loop must outlive any scan (see module doc)
            self.health.count("internal_errors")
            log.error("scan input=%s from %s: internal error around the decision: %s at %s", input_hash(scan.text), scan.source, type(exc).__name__, fault_location(exc))
            self._refuse_quietly()

    def _refuse_quietly(self) -> None:
        """Red light and the staff message, after something already failed; a failure here is only logged."""
        try:
            if self.turnstile is not None:
                self.turnstile.refuse()
            self.display.show(Decision.deny(Reason.INTERNAL_ERROR, "internal error"), self.catalogue[Reason.INTERNAL_ERROR])
        except Exception:  # the refusal is best effort; the loop must go on
            log.exception("could not show the refusal")

    def _decide(self, scan: Scan, direction: Direction) -> None:
        if self.turnstile is not None and not self.supervisor.is_up(TURNSTILE):
            result = self.validator.refuse(scan.text, direction, Reason.INTERNAL_ERROR, "turnstile not working: nobody is admitted")
        else:
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

    # -- workers ----------------------------------------------------------------------

    def _read_scanner(self, scanner: Scanner, direction: Direction, stop: threading.Event) -> None:
        for scan in scanner.scans(stop):
            try:
                self._scans.put_nowait((scan, direction))
            except queue.Full:
                log.warning("scan from %s dropped: %d scans already waiting", scan.source, self._scans.qsize())
                with self.decided:
                    self.counters.dropped_scans += 1
                    self.decided.notify_all()

    def _drive_turnstile(self, turnstile: Turnstile) -> None:
        while True:
            admission = self._admissions.get()
            if admission is None:
                return
            self._in_turnstile = (admission, False)
            self._admit(turnstile, admission)
            self._in_turnstile = None

    def _admit(self, turnstile: Turnstile, admission: Admission) -> None:
        if not self.validator.begin_passage(admission):
            self.validator.passage(admission, 0, "pulse could not be recorded: relay not opened")
            self._admission_done(0)
            return
        self._in_turnstile = (admission, True)
        result = turnstile.admit(admission.direction.value, admission.persons)
        if result.error:
            log.error("turnstile fault during admission seq %d: %s", admission.event_seq, result.error)
        self.validator.passage(admission, result.passed)
        self._admission_done(result.passed)

    def _admission_done(self, passed: int) -> None:
        with self.decided:
            self.counters.rollbacks += passed == 0
            self.counters.admissions_done += 1
            self.decided.notify_all()

    def _turnstile_crashed(self, turnstile: Turnstile, exc: BaseException) -> None:
        """Settle the admission in hand and roll back those waiting: nobody is admitted while the turnstile is down."""
        if self._in_turnstile is not None:
            admission, pulsed = self._in_turnstile
            self._in_turnstile = None
            stands = self.validator.settle_interrupted(admission, pulsed, turnstile.confirms_passage, f"a turnstile crash ({type(exc).__name__})")
            self._admission_done(admission.persons if stands else 0)
        self._roll_back_waiting_admissions()

    # -- shutdown ---------------------------------------------------------------------

    def _shutdown(self, scanner_stop: threading.Event, turnstile_stop: threading.Event) -> None:
        self.notifier.stopping()
        scanner_stop.set()
        for scanner, _ in self.scanners:
            self.supervisor.join(_scanner_part(scanner), timeout=5)
        if not self._scans.empty():
            log.info("%d scan(s) not decided at shutdown; nothing was recorded or opened for them", self._scans.qsize())
        if self.turnstile is not None:
            self._roll_back_waiting_admissions()
            turnstile_stop.set()
            self._admissions.put(None)
            self.supervisor.join(TURNSTILE)
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
                self.validator.passage(admission, 0, "never reached the turnstile")
                self._admission_done(0)


def _scanner_part(scanner: Scanner) -> str:
    return f"scanner {scanner.source}"
