"""Visitors walking through a turnstile under test: a thread that waits for the gate to open,
then breaks the passage beam (or has a relay module count a passage), as people would.

The waits are on the fakes' own conditions (``FakeLine.wait_for``, ``PtyBoard.wait_for``),
never on a sleep; ``pace_seconds`` only spaces visitors apart, it synchronises nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gate.turnstile.fakeline import FakeLine, FakeLineState

VISITOR_WAIT = 3.0  # how long a visitor waits for the gate to open before going home


def openings(states: list[FakeLineState], active_high: bool = True) -> int:
    """How many times a relay line recorded in ``states`` switched to open."""
    return sum(1 for before, after in zip(states, states[1:]) if after.high == active_high and before.high != active_high)


def break_beam(sensor: FakeLine) -> Callable[[], None]:
    """One person passing a light barrier: the beam breaks, then clears."""
    def passage() -> None:
        sensor.drive_high()
        sensor.drive_low()
    return passage


def _start(walk: Callable[[], None]) -> threading.Thread:
    walker = threading.Thread(target=walk, name="visitors", daemon=True)
    walker.start()
    return walker


def group_walks_through(opened: Callable[[], bool], passage: Callable[[], None], count: int = 1,
                        pace_seconds: float = 0.0) -> threading.Thread:
    """Start a group of ``count``: once ``opened()`` (a wait with its own timeout) says the gate
    opened, each member passes (``passage()``), ``pace_seconds`` apart. If it never opens, nobody passes."""
    pace = threading.Event()  # never set: only spaces the visitors

    def walk() -> None:
        if not opened():
            return
        for person in range(count):
            if person and pace_seconds:
                pace.wait(pace_seconds)
            passage()

    return _start(walk)


def visitors_walk_through_each_opening(relay: FakeLine, sensor: FakeLine, count: int,
                                       active_high: bool = True) -> threading.Thread:
    """Start ``count`` visitors: each waits for the next opening of ``relay``, then breaks the beam."""

    def walk() -> None:
        for person in range(1, count + 1):
            if not relay.wait_for(lambda states: openings(states, active_high) >= person, timeout=VISITOR_WAIT):
                return
            break_beam(sensor)()

    return _start(walk)
