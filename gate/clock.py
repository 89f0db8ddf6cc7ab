"""Trusted time at a gate that may be offline for hours.

DCC verifiers were fooled by clocks set back; a gate must not be. It keeps an
anchor (a trusted wall time and the monotonic reading at that moment) and
a persisted high-water mark of the latest trusted time it has seen. Hub
time, carried signed in every hub message, re-anchors it. When the wall clock
falls behind what the monotonic clock says has elapsed (or, after a restart,
behind the high-water mark) by more than the threshold, the clock is
untrusted: decisions use the best lower bound instead of the wall clock and
the gate reports the degraded state until hub time arrives.

Pure apart from the two clock functions it is given, so tests drive time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockReading:
    now: int
    trusted: bool
    offset_to_hub: float | None


class GateClock:
    """Not thread-safe on its own: the validator calls it under its lock."""

    def __init__(
        self,
        high_water: float,
        threshold_seconds: float = 300.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall, self._monotonic = wall, monotonic
        self.threshold = threshold_seconds
        self.high_water = high_water
        self._hub_offset: float | None = None
        start_wall = wall()
        self._trusted = start_wall >= high_water - threshold_seconds
        if not self._trusted:
            log.warning("clock untrusted at start: wall %.0f is %.0f s behind the last trusted time %.0f", start_wall, high_water - start_wall, high_water)
        self._anchor = (max(start_wall, high_water), monotonic())

    def read(self) -> ClockReading:
        wall, mono = self._wall(), self._monotonic()
        expected = self._anchor[0] + (mono - self._anchor[1])
        corrected = wall + (self._hub_offset or 0.0)
        if self._trusted and corrected < expected - self.threshold:
            self._trusted = False
            log.warning("clock untrusted: wall clock jumped back %.0f s", expected - corrected)
        if self._trusted:
            now = corrected
            if corrected > expected + self.threshold:
                log.info("wall clock jumped forward %.0f s; following it", corrected - expected)
            self._anchor = (corrected, mono)
        else:
            now = expected
        self.high_water = max(self.high_water, now)
        return ClockReading(int(now), self._trusted, self._hub_offset)

    def sync_to_hub(self, hub_time: float) -> None:
        """Hub time (from a verified message) becomes the reference and restores trust."""
        wall, mono = self._wall(), self._monotonic()
        self._hub_offset = hub_time - wall
        if not self._trusted:
            log.warning("clock trusted again: hub time %.0f, wall offset %.1f s", hub_time, self._hub_offset)
        self._trusted = True
        self._anchor = (hub_time, mono)
        self.high_water = hub_time  # the hub is the authority, also over a high-water mark a wrong clock left

    @property
    def trusted(self) -> bool:
        return self._trusted
