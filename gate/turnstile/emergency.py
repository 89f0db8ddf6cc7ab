"""Watching the emergency input (a fire-alarm contact) in its own thread.

The watcher reports the input's level to a callback on every edge, and also re-reads it
every ``check_seconds`` in case an edge was lost, so a fire alarm is never missed for
long. The callback is the turnstile's ``set_emergency``; the watcher itself decides
nothing.

Thread guarantees: the callback runs in the watcher thread; :meth:`stop` returns once
the thread has ended (at most ``check_seconds`` later).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from gate.turnstile.errors import LineError
from gate.turnstile.gpio_lines import Line

log = logging.getLogger(__name__)


class EmergencyWatcher:
    """Calls ``on_change(active)`` when the input's logical level changes (and once at
    start with the initial level), ``on_error(exc)`` when the line cannot be read."""

    def __init__(self, line: Line, on_change: Callable[[bool], None], on_error: Callable[[LineError], None],
                 check_seconds: float = 0.1) -> None:
        self.line = line
        self._on_change = on_change
        self._on_error = on_error
        self._check_seconds = check_seconds
        self._stop = threading.Event()
        self._active: bool | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="turnstile-emergency-input", daemon=True)

    def start(self) -> None:
        """Read the input once (so an alarm already active at start-up counts at once),
        then keep watching in the background."""
        self._check()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.line.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.line.poll(self._check_seconds):
                    self.line.read_event()
            except LineError as exc:
                if self._stop.is_set():
                    return
                self._report_error(exc)
                self._stop.wait(self._check_seconds)
                continue
            self._check()

    def _check(self) -> None:
        try:
            active = self.line.read()
        except LineError as exc:
            self._report_error(exc)
            return
        self._failing = False
        if active != self._active:
            self._active = active
            self._on_change(active)

    def _report_error(self, exc: LineError) -> None:
        if not self._failing:  # one report per outage, not one per check
            self._failing = True
            self._on_error(exc)
