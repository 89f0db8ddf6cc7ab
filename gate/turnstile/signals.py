"""Green and red lights and a buzzer: what the visitor sees and hears.

Each is optional (``None`` means not fitted). Patterns play in one small worker thread so
the caller never waits: :meth:`Signals.granted` returns at once while the green light
stays on and the buzzer beeps. A new pattern replaces the one playing. After a pattern
the outputs return to rest: all off, or green steady during an emergency (free passage).

Thread guarantees: every public method may be called from any thread. A light that
fails to switch is logged and skipped; lights never fail an admission.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from gate.turnstile.errors import LineError
from gate.turnstile.gpio_lines import Line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """Outputs on during this step (the others off) and how long it lasts."""

    green: bool
    red: bool
    buzzer: bool
    seconds: float


Pattern = tuple[Step, ...]


class Signals:
    """Plays light and buzzer patterns on optional lines; the lines are owned and closed here."""

    def __init__(self, green: Line | None = None, red: Line | None = None, buzzer: Line | None = None,
                 signal_seconds: float = 1.0, beep_seconds: float = 0.1) -> None:
        self._lines = {"green": green, "red": red, "buzzer": buzzer}
        self.signal_seconds = signal_seconds
        self.beep_seconds = beep_seconds
        self._cond = threading.Condition()
        self._pending: Pattern | None = None
        self._emergency = False
        self._closed = False
        self._thread: threading.Thread | None = None
        if any(line is not None for line in self._lines.values()):
            self._thread = threading.Thread(target=self._run, name="turnstile-signals", daemon=True)
            self._thread.start()

    def granted(self) -> None:
        """Green with one short beep."""
        beep = min(self.beep_seconds, self.signal_seconds)
        self._play((Step(True, False, True, beep), Step(True, False, False, self.signal_seconds - beep)))

    def denied(self) -> None:
        """Red with two short beeps."""
        beep = self.beep_seconds
        beeps = (Step(False, True, True, beep), Step(False, True, False, beep), Step(False, True, True, beep))
        self._play(beeps + (Step(False, True, False, max(0.0, self.signal_seconds - 3 * beep)),))

    def set_emergency(self, on: bool) -> None:
        """Rest on green steady while ``on`` (the gate is open to everyone)."""
        with self._cond:
            self._emergency = on
            if self._pending is None:
                self._pending = ()  # an empty pattern: go straight to rest
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the worker, switch everything off and release the lines."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for line in self._lines.values():
            if line is not None:
                self._write(line, False)
                line.close()

    def _play(self, pattern: Pattern) -> None:
        with self._cond:
            self._pending = pattern
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._pending is None:
                    self._cond.wait()
                    continue
                pattern, self._pending = self._pending, None
                for step in pattern:
                    self._apply(step.green, step.red, step.buzzer)
                    deadline = time.monotonic() + step.seconds
                    # Waiting on the condition releases it, so a new pattern can interrupt.
                    while self._pending is None and not self._closed and time.monotonic() < deadline:
                        self._cond.wait(deadline - time.monotonic())
                    if self._pending is not None or self._closed:
                        break
                else:
                    self._apply(self._emergency, False, False)

    def _apply(self, green: bool, red: bool, buzzer: bool) -> None:
        for name, value in (("buzzer", buzzer), ("red", red), ("green", green)):
            line = self._lines[name]
            if line is not None:
                self._write(line, value)

    @staticmethod
    def _write(line: Line, value: bool) -> None:
        try:
            line.write(value)
        except LineError as exc:
            log.warning("signal light or buzzer: %s", exc)
