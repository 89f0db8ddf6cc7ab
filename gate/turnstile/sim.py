"""The simulated turnstile for the demo and the daemon's tests.

:class:`SimTurnstile` *is* a :class:`~gate.turnstile.turnstile.Turnstile` built over
:class:`~gate.turnstile.fakeline.FakeLine` lines, so the daemon exercises the very code
that drives real relays. Two listeners make it a simulation: :class:`SimulatedVisitors`
walks the admitted people through the fake passage sensor, and :class:`JsonLinesRecorder`
writes every pulse, passage and state change as one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from gate.turnstile.events import EventKind, TurnstileEvent
from gate.turnstile.fakeline import FakeLine, FakeLineFactory
from gate.turnstile.turnstile import Turnstile

log = logging.getLogger(__name__)

SIM_CHIP = "sim"
# Line offsets on the simulated chip; fixed so tests and the demo can find each device.
SIM_LINES = {"entry_relay": 0, "exit_relay": 1, "passage_sensor": 2, "green_light": 3,
             "red_light": 4, "buzzer": 5, "emergency_input": 6}


class SimulatedVisitors:
    """Listener that, when an admission starts, lets its people walk through the sensor:
    the i-th one ``delay * i`` seconds later, at most ``persons_passing`` (None: all).

    Thread guarantees: passages are driven from this object's own thread; a passage still
    scheduled when the admission ends is dropped, never counted for the next one.
    """

    def __init__(self, sensor: Callable[[], FakeLine], delay_seconds: float, persons_passing: int | None = None) -> None:
        self._sensor = sensor  # looked up when needed: the line is opened after this listener exists
        self.delay_seconds = delay_seconds
        self.persons_passing = persons_passing
        self._cond = threading.Condition()
        self._due: list[float] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="turnstile-sim-visitors", daemon=True)
        self._thread.start()

    def __call__(self, event: TurnstileEvent) -> None:
        with self._cond:
            if event.kind is EventKind.ADMIT and event.expected:
                walking = event.expected if self.persons_passing is None else min(event.expected, self.persons_passing)
                self._due = [event.at + self.delay_seconds * (i + 1) for i in range(walking)]
            elif event.kind is EventKind.ADMIT_DONE:
                self._due = []
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._due:
                    self._cond.wait()
                    continue
                wait = self._due[0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._due.pop(0)
                sensor = self._sensor()
                sensor.drive_high()  # one person breaks the beam...
                sensor.drive_low()  # ...and clears it


class JsonLinesRecorder:
    """Listener appending each event to ``path`` as a JSON line with the wall-clock time
    (``time``), the monotonic time (``at``), the event kind and its set fields.

    Each line is flushed as written, so a reader (test, demo) sees it at once.
    Thread guarantees: callable from any thread; lines never interleave.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def __call__(self, event: TurnstileEvent) -> None:
        record: dict[str, object] = {"time": round(time.time(), 6), "event": event.kind.value}
        record.update({key: value for key, value in asdict(event).items() if key != "kind" and value is not None})
        line = json.dumps(record, ensure_ascii=False, sort_keys=False)
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class SimTurnstile(Turnstile):
    """A :class:`Turnstile` on fake lines, plus handles to reach them. Built by
    ``build_turnstile`` for ``kind = "sim"``; behaves exactly like a GPIO turnstile."""

    lines: FakeLineFactory
    visitors: SimulatedVisitors

    def line(self, role: str) -> FakeLine:
        """The fake line of a device: one of the keys of :data:`SIM_LINES`."""
        if role not in SIM_LINES:
            raise ValueError(f"role: unknown {role!r}; expected one of {', '.join(SIM_LINES)}")
        return self.lines.line(SIM_CHIP, SIM_LINES[role])
