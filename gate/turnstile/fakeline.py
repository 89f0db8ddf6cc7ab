"""The only fake in the turnstile stack: a digital line that records what happened.

Modelled on gpiozero's ``MockPin``: every change of the *electrical* level is kept in
:attr:`FakeLine.states` with a monotonic timestamp, inputs are driven with
:meth:`FakeLine.drive_high` / :meth:`FakeLine.drive_low`, and an output can be wired to
an input with :meth:`FakeLine.connect` (gpiozero's ``MockConnectedPin``). Relays, sensor,
lights and the emergency watcher run unchanged on top of it.

Thread guarantees: every method may be called from any thread. A pending ``poll()``
wakes at once (a ``threading.Condition``, no sleeping) when an edge is driven or the
line is closed; tests wait for outputs with :meth:`FakeLine.wait_for`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from gate.turnstile.errors import LineError
from gate.turnstile.gpio_lines import EDGES, Edge, Line, LineDirection, LineEvent, line_name
from gate.turnstile.settings import LineSettings


@dataclass(frozen=True)
class FakeLineState:
    """The electrical level (``high``) the line took at ``timestamp`` (time.monotonic)."""

    timestamp: float
    high: bool


class FakeLine(Line):
    """A line held in memory. ``read``/``write`` are logical (``inverted`` = active low);
    ``states``, ``drive_high`` and ``drive_low`` are electrical, like a probe on the pin."""

    def __init__(self, name: str = "fake line", direction: LineDirection = "in", edge: Edge = "none",
                 inverted: bool = False) -> None:
        if direction not in ("in", "out"):
            raise LineError(f"{name}: direction must be 'in' or 'out', got {direction!r}")
        if edge not in EDGES:
            raise LineError(f"{name}: edge must be one of {', '.join(EDGES)}, got {edge!r}")
        self.name = name
        self.direction = direction
        self.inverted = inverted
        self.edge = edge
        self._cond = threading.Condition()
        # Like periphery's "low" output: starts logically inactive.
        self._high = inverted
        self.states: list[FakeLineState] = [FakeLineState(time.monotonic(), self._high)]
        self._events: deque[LineEvent] = deque()
        self._targets: list[FakeLine] = []
        self._closed = False

    # periphery-shaped interface -------------------------------------------------------

    def read(self) -> bool:
        with self._cond:
            self._check_open("read")
            return self._high != self.inverted

    def write(self, value: bool) -> None:
        if self.direction != "out":
            raise LineError(f"cannot write {self.name}: it is an input")
        with self._cond:
            self._check_open("write")
        self._set_level(bool(value) != self.inverted)

    def poll(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._check_open("poll")
            while not self._events and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return bool(self._events)

    def read_event(self) -> LineEvent:
        with self._cond:
            self._check_open("read an event from")
            while not self._events:
                self._cond.wait()
                self._check_open("read an event from")
            return self._events.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # test helpers ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def levels(self) -> list[bool]:
        """The electrical levels in order, without timestamps."""
        with self._cond:
            return [state.high for state in self.states]

    def drive_high(self) -> None:
        """Put the input's pin at the high level, as a sensor or contact would."""
        self._drive(True)

    def drive_low(self) -> None:
        """Put the input's pin at the low level."""
        self._drive(False)

    def connect(self, target: FakeLine) -> None:
        """Wire this output to ``target``, an input: every level this line takes is
        driven onto ``target`` (which takes the current level at once)."""
        if self.direction != "out" or target.direction != "in":
            raise LineError(f"cannot connect {self.name} to {target.name}: need an output to an input")
        with self._cond:
            self._targets.append(target)
            level = self._high
        target._set_level(level)

    def assert_states(self, expected: Sequence[bool]) -> None:
        """Fail unless the recorded electrical levels are exactly ``expected``."""
        actual = self.levels
        assert actual == list(expected), f"{self.name}: levels {actual}, expected {list(expected)}"

    def wait_for(self, predicate: Callable[[list[FakeLineState]], bool], timeout: float = 2.0) -> bool:
        """Block until ``predicate(states)`` holds (re-checked on every change) or the
        timeout passes; returns whether it held. For tests observing outputs driven by
        another thread, instead of sleeping."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.states), timeout)

    def wait_for_changes(self, count: int, timeout: float = 2.0) -> bool:
        """Block until at least ``count`` changes followed the initial state."""
        return self.wait_for(lambda states: len(states) > count, timeout)

    # internals ------------------------------------------------------------------------

    def _drive(self, high: bool) -> None:
        if self.direction != "in":
            raise LineError(f"cannot drive {self.name}: it is an output")
        self._set_level(high)

    def _set_level(self, high: bool) -> None:
        with self._cond:
            if high == self._high:
                return
            self._high = high
            now = time.monotonic()
            self.states.append(FakeLineState(now, high))
            if self.direction == "in":
                active = high != self.inverted
                edge = "rising" if active else "falling"
                if self.edge == "both" or self.edge == edge:
                    self._events.append(LineEvent(edge, now))
            targets = list(self._targets)
            self._cond.notify_all()
        for target in targets:
            target._set_level(high)

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise LineError(f"cannot {action} {self.name}: it is closed")


class FakeLineFactory:
    """Opens :class:`FakeLine` lines and keeps them, so a test can reach the line a
    device was built on with :meth:`line` (like gpiozero's ``MockFactory.pin``).

    Opening a line that is open already fails, as the kernel would (EBUSY), which catches
    two devices configured on one line.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[tuple[str, int], FakeLine] = {}

    def open(self, settings: LineSettings, direction: LineDirection, edge: Edge = "none", label: str = "") -> Line:
        key = (settings.chip, settings.line)
        name = f"{line_name(settings)} ({label})" if label else line_name(settings)
        with self._lock:
            existing = self._lines.get(key)
            if existing is not None and not existing.closed:
                raise LineError(f"cannot open {name}: busy, already open as {existing.name}")
            line = FakeLine(name, direction, edge, settings.active_low)
            self._lines[key] = line
            return line

    def line(self, chip: str, offset: int) -> FakeLine:
        """The line last opened at ``chip``/``offset`` (still inspectable after close)."""
        with self._lock:
            try:
                return self._lines[(chip, offset)]
            except KeyError:
                raise LineError(f"no fake line was opened at {chip} line {offset}") from None
