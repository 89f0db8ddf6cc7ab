"""Passage sensors: an admission only counts when someone actually walks through.

A :class:`PassageSensor` counts activations (a beam broken, a tripod arm turned, the
controller's "passed" contact) and :meth:`PassageSensor.wait_for_passages` reports how
many people passed before the gate gave up on the next one. The daemon rolls back the
admissions of those who did not pass.

Thread guarantees: one thread waits on a sensor at a time (the turnstile's admit lock);
``ok`` may be read from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import Callable, NoReturn

from gate.turnstile.errors import LineError, RelayError, SensorError
from gate.turnstile.gpio_lines import Line
from gate.turnstile.modbus import ModbusRelayModule

log = logging.getLogger(__name__)

# Longest a wait goes without looking at its stop event; only bounds shutdown latency,
# edges themselves wake the wait at once.
STOP_CHECK_SECONDS = 0.05

PassageCallback = Callable[[int], None]


class PassageSensor(ABC):
    """Counts passages. ``confirmed`` is False for :class:`NoPassageSensor`, whose counts
    are assumed, not observed."""

    confirmed = True

    def __init__(self, name: str) -> None:
        self.name = name
        self._ok = True

    @property
    def ok(self) -> bool:
        """False while the last access to the sensor failed."""
        return self._ok

    @abstractmethod
    def discard_pending(self) -> None:
        """Forget activations seen before now, so an earlier visitor or noise cannot count
        for the admission about to start. Raises :class:`SensorError`."""

    @abstractmethod
    def wait_for_passages(self, count: int, timeout: float, stop: threading.Event | None = None,
                          on_passage: PassageCallback | None = None) -> int:
        """Wait until ``count`` people passed; return how many did.

        ``timeout`` is the longest wait for the *next* person (it restarts after each
        passage), so a group is never cut off while it keeps moving. Returns early, with
        the count so far, when ``stop`` is set. ``on_passage(n)`` is called after the n-th
        passage, in this thread. Raises :class:`SensorError` if the sensor fails.
        """

    def close(self) -> None:
        """Release the sensor's own resources (not a shared board)."""


class LinePassageSensor(PassageSensor):
    """A sensor on a GPIO input; each rising (activating) edge is one passage. Edges
    closer than ``debounce_seconds`` to the previous one are contact bounce, not people."""

    def __init__(self, line: Line, debounce_seconds: float = 0.0) -> None:
        super().__init__(f"passage sensor on {line.name}")
        self.line = line
        self.debounce_seconds = debounce_seconds
        self._last_timestamp: float | None = None

    def discard_pending(self) -> None:
        try:
            while self.line.poll(0):
                self.line.read_event()
        except LineError as exc:
            self._fail(exc)

    def wait_for_passages(self, count: int, timeout: float, stop: threading.Event | None = None,
                          on_passage: PassageCallback | None = None) -> int:
        passed = 0
        deadline = time.monotonic() + timeout
        while passed < count and not (stop is not None and stop.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if not self.line.poll(min(remaining, STOP_CHECK_SECONDS)):
                    continue
                event = self.line.read_event()
            except LineError as exc:
                self._fail(exc)
            self._ok = True
            if event.edge != "rising" or self._bounced(event.timestamp):
                continue
            passed += 1
            deadline = time.monotonic() + timeout
            if on_passage is not None:
                on_passage(passed)
        return passed

    def close(self) -> None:
        self.line.close()

    def _bounced(self, timestamp: float) -> bool:
        last, self._last_timestamp = self._last_timestamp, timestamp
        return last is not None and timestamp - last < self.debounce_seconds

    def _fail(self, exc: LineError) -> NoReturn:
        self._ok = False
        raise SensorError(f"{self.name}: {exc}") from exc


class ModbusPassageSensor(PassageSensor):
    """A discrete input of a Modbus relay module, polled every ``poll_seconds``; each
    change from inactive to active is one passage. Polling is the only way over Modbus;
    an activation shorter than the poll interval can be missed, so keep it short."""

    def __init__(self, module: ModbusRelayModule, address: int, poll_seconds: float = 0.02) -> None:
        super().__init__(f"passage input {address} of modbus slave {module.slave} on {module.port}")
        self.module = module
        self.address = address
        self.poll_seconds = poll_seconds
        self._level = False
        self._idle = threading.Event()  # never set: a plain interruptible wait when no stop is given

    def discard_pending(self) -> None:
        self._level = self._read()

    def wait_for_passages(self, count: int, timeout: float, stop: threading.Event | None = None,
                          on_passage: PassageCallback | None = None) -> int:
        passed = 0
        waiter = stop if stop is not None else self._idle
        deadline = time.monotonic() + timeout
        while passed < count and not waiter.is_set() and time.monotonic() < deadline:
            level = self._read()
            if level and not self._level:
                passed += 1
                deadline = time.monotonic() + timeout
                if on_passage is not None:
                    on_passage(passed)
            self._level = level
            if passed < count:
                waiter.wait(min(self.poll_seconds, max(0.0, deadline - time.monotonic())))
        return passed

    def _read(self) -> bool:
        try:
            level = self.module.read_discrete_inputs(self.address, 1)[0]
        except RelayError as exc:
            self._ok = False
            raise SensorError(f"{self.name}: {exc}") from exc
        self._ok = True
        return level


class NoPassageSensor(PassageSensor):
    """For gates without a sensor (``passage_confirmation = false``): everyone admitted
    is assumed to pass. Results carry ``confirmed=False`` so nobody mistakes them."""

    confirmed = False

    def __init__(self) -> None:
        super().__init__("no passage sensor")

    def discard_pending(self) -> None:
        pass

    def wait_for_passages(self, count: int, timeout: float, stop: threading.Event | None = None,
                          on_passage: PassageCallback | None = None) -> int:
        return count
