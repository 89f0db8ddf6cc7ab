"""Every worker thread of the gate has an owner that notices when it dies.

The crash policy (docs/ARCHITECTURE.md, "Crash policy"):
- a worker (scanner reader, turnstile driver) that raises is logged once
  with its traceback, reported in health (``worker_down:<name>`` alarm, the
  heartbeat's scanner / relay state says so, never ``ok``) and restarted
  after a backoff that doubles from ``first_backoff`` to ``max_backoff``;
- a worker that returns has finished (a video file ended, the turnstile
  was told to stop): it is not restarted;
- a worker that crashes ``max_crashes`` times within ``window_seconds``
  cannot recover: it stays down (``worker_failed``), and the daemon stops
  feeding the systemd watchdog, so systemd restarts the whole process;
- threads owned by another part (the hub link) are *watched*: one that died
  is failed at once, since only a restart of the process can bring it back.

Thread-safe: workers report from their own threads, anyone may read.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .health import Alarm, GateHealth

log = logging.getLogger(__name__)


class PartState(str, enum.Enum):
    UP = "ok"
    RESTARTING = "restarting"
    FAILED = "failed"


@dataclass(frozen=True)
class CrashPolicy:
    first_backoff: float = 0.5
    max_backoff: float = 10.0
    max_crashes: int = 5
    window_seconds: float = 60.0


@dataclass
class _Part:
    state: PartState = PartState.UP
    error: str = ""
    crashes: list[float] | None = None
    thread: threading.Thread | None = None
    alive: Callable[[], bool] | None = None  # for watched parts


class Supervisor:
    def __init__(self, health: GateHealth, policy: CrashPolicy = CrashPolicy(), monotonic: Callable[[], float] = time.monotonic) -> None:
        self.health, self.policy, self._monotonic = health, policy, monotonic
        self._parts: dict[str, _Part] = {}
        self._lock = threading.RLock()  # re-entrant: ``wait_for`` predicates read the state under it
        self.changed = threading.Condition(self._lock)

    def start(self, name: str, work: Callable[[], None], stop: threading.Event, on_crash: Callable[[BaseException], None] | None = None) -> None:
        """Run ``work()`` in a thread named ``name`` until ``stop`` is set, restarting it after crashes.

        ``on_crash`` runs in the worker's thread right after a crash, before
        the backoff (e.g. the turnstile rolls back the admissions it held).
        """
        part = _Part(crashes=[])
        thread = threading.Thread(target=self._run, args=(name, part, work, stop, on_crash), name=name, daemon=True)
        part.thread = thread
        with self._lock:
            self._parts[name] = part
        thread.start()

    def watch(self, name: str, alive: Callable[[], bool]) -> None:
        """Watch a thread another part owns; ``check_watched`` fails it once ``alive()`` is false."""
        with self._lock:
            self._parts[name] = _Part(alive=alive)

    def check_watched(self) -> None:
        """Called from the decision loop: a watched thread that died cannot be restarted here."""
        with self._lock:
            dead = [name for name, part in self._parts.items() if part.alive is not None and part.state is PartState.UP and not part.alive()]
        for name in dead:
            self._set(name, PartState.FAILED, "thread ended")
            self.health.raise_alarm(Alarm.WORKER_FAILED, "thread ended; the process must restart", name)

    def state(self, name: str) -> tuple[PartState, str]:
        with self._lock:
            part = self._parts.get(name)
            return (PartState.UP, "") if part is None else (part.state, part.error)

    def is_up(self, name: str) -> bool:
        return self.state(name)[0] is PartState.UP

    def failed(self) -> list[str]:
        with self._lock:
            return [name for name, part in self._parts.items() if part.state is PartState.FAILED]

    def join(self, name: str, timeout: float | None = None) -> None:
        with self._lock:
            part = self._parts.get(name)
        if part is not None and part.thread is not None:
            part.thread.join(timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds after a state change, or ``timeout`` (tests and tools)."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def _run(self, name: str, part: _Part, work: Callable[[], None], stop: threading.Event, on_crash: Callable[[BaseException], None] | None) -> None:
        backoff = self.policy.first_backoff
        while not stop.is_set():
            try:
                work()
                return
            except Exception as exc:  # the supervisor is the documented last guard of every worker: log, report, restart
                gave_up = self._crashed(name, part, exc)  # first: the part is reported down before anyone may use it again
                if on_crash is not None:
                    self._run_crash_handler(name, on_crash, exc)
                if gave_up:
                    return
            self.health.count("worker_restarts")
            if stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.policy.max_backoff)
            log.warning("worker %s restarting", name)
            self._set(name, PartState.UP, "")
            self.health.clear_alarm(Alarm.WORKER_DOWN, name)

    def _run_crash_handler(self, name: str, on_crash: Callable[[BaseException], None], exc: BaseException) -> None:
        try:
            on_crash(exc)
        except Exception:  # a failing clean-up must not stop the supervision of the part; logged
            log.exception("worker %s: clean-up after the crash failed", name)

    def _crashed(self, name: str, part: _Part, exc: BaseException) -> bool:
        """Record a crash; True when the part cannot recover (too many crashes in the window)."""
        now = self._monotonic()
        assert part.crashes is not None
        part.crashes[:] = [at for at in part.crashes if now - at < self.policy.window_seconds] + [now]
        detail = f"{type(exc).__name__}: {exc}"
        log.error("worker %s crashed (%d in %.0f s): %s", name, len(part.crashes), self.policy.window_seconds, detail, exc_info=exc)
        if len(part.crashes) >= self.policy.max_crashes:
            self._set(name, PartState.FAILED, detail)
            self.health.raise_alarm(Alarm.WORKER_FAILED, f"{len(part.crashes)} crashes, last: {detail}", name)
            return True
        self._set(name, PartState.RESTARTING, detail)
        self.health.raise_alarm(Alarm.WORKER_DOWN, detail, name)
        return False

    def _set(self, name: str, state: PartState, error: str) -> None:
        with self.changed:
            part = self._parts[name]
            part.state, part.error = state, error
            self.changed.notify_all()
