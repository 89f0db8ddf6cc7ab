"""Trusted time at a gate that may be offline for hours.

DCC verifiers were fooled by clocks set back; a gate must not be, neither by
one big step nor by many small ones, nor by a clock pushed forward to admit
tomorrow's tickets. Two references, both driven by the monotonic clock:

- the **anchor**: a time believed right (hub time once it arrives; at start
  the wall clock, when it is not behind the lower bound) and the monotonic
  reading then. ``anchor + monotonic elapsed`` is where the wall clock should
  be. The wall clock is followed while it stays within ``threshold`` of that,
  either way; the anchor itself moves only with hub time, so small steps
  add up against it and cannot walk the clock anywhere.
- the **lower bound** (``high_water``, persisted by the validator): the
  latest trusted time, at least the last hub time or persisted bound plus
  monotonic elapsed time (the monotonic clock stops while a board is
  suspended, so that is a true lower bound). It only moves forward, and only
  by readings inside the window: a wall clock pushed ahead is not followed,
  so it leaves no mark that keeps the gate refusing after it is put right
  and the gate restarts. (A clock already wrong when the gate starts cannot
  be told from a right one until hub time arrives.)

Outside the window the clock is untrusted: decisions use the anchor's
expectation (never the forged wall time) and the gate reports the degraded
state until the wall clock is back in the window or hub time arrives.
Trust is not sticky: a wall clock put right is trusted again at once.

Pure apart from the two clock functions it is given, so tests drive time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# How far behind the last trusted time the wall clock may read before it is untrusted
# (gate.toml [rules] clock_jump_threshold_seconds; lungta.config.GateConfig declares its bounds).
JUMP_THRESHOLD_SECONDS = 300.0


@dataclass(frozen=True)
class ClockReading:
    """``now`` in whole Unix seconds (what the engine compares), ``now_ms`` for event times.

    ``lease_now`` (Unix s) is the time quota leases expire by: the latest
    ``now`` read, so a clock stepped back can never make an expired lease
    live again; reset to hub time when that arrives. Heartbeats report it.
    """

    now: int
    trusted: bool
    offset_to_hub: float | None
    now_ms: int = 0
    lease_now: int = 0


class GateClock:
    """Thread-safe: the validator reads it while deciding, the hub sync reads it for heartbeats and sets hub time."""

    def __init__(
        self,
        high_water: float,
        threshold_seconds: float = JUMP_THRESHOLD_SECONDS,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall, self._monotonic = wall, monotonic
        self.threshold = threshold_seconds
        self.high_water = high_water
        self._hub_offset: float | None = None
        start_wall, start_mono = wall(), monotonic()
        self._lower = (high_water, start_mono)
        self._trusted = start_wall >= high_water - threshold_seconds
        if not self._trusted:
            log.warning("clock untrusted at start: wall %.0f is %.0f s behind the last trusted time %.0f", start_wall, high_water - start_wall, high_water)
        self._anchor = (max(start_wall, high_water), start_mono)
        self._off_by = 0.0  # how far the wall clock was outside the window at the last reading (logged on change)
        self._lease_now = 0  # never back, and never ahead of hub time once it is known (see ClockReading)
        self._lock = threading.Lock()

    def read(self) -> ClockReading:
        with self._lock:
            return self._read()

    def _read(self) -> ClockReading:
        wall, mono = self._wall(), self._monotonic()
        expected = self._anchor[0] + (mono - self._anchor[1])
        corrected = wall + (self._hub_offset or 0.0)
        off_by = corrected - expected
        trusted = abs(off_by) <= self.threshold
        now = corrected if trusted else expected
        self._note_change(trusted, off_by)
        self.high_water = max(self.high_water, self._lower[0] + (mono - self._lower[1]), now if trusted else 0)
        self._lease_now = max(self._lease_now, int(now))
        return ClockReading(int(now), trusted, self._hub_offset, int(now * 1000), self._lease_now)

    def _note_change(self, trusted: bool, off_by: float) -> None:
        """One log line when trust changes, not one per scan."""
        if trusted != self._trusted:
            if trusted:
                log.warning("clock trusted again: wall clock back within %.0f s of the expected time", self.threshold)
            else:
                log.warning("clock untrusted: wall clock %s %.0f s from the expected time; deciding on the expected time",
                            "ahead" if off_by > 0 else "behind", abs(off_by))
        self._trusted = trusted

    def sync_to_hub(self, hub_time: float) -> None:
        """Fresh, verified hub time becomes the anchor and the lower bound, and restores trust.

        The caller (gate/sync) passes only hub time from an answer to the
        gate's own request; the hub is the authority, also over a lower bound
        an earlier wrong clock may have left, and over the lease clock (a wall
        clock that ran ahead must not keep expiring live leases).
        """
        with self._lock:
            wall, mono = self._wall(), self._monotonic()
            self._hub_offset = hub_time - wall
            if not self._trusted:
                log.warning("clock trusted again: hub time %.0f, wall offset %.1f s", hub_time, self._hub_offset)
            self._trusted = True
            self._anchor = (hub_time, mono)
            self._lower = (hub_time, mono)
            self.high_water = hub_time
            self._lease_now = int(hub_time)

    @property
    def trusted(self) -> bool:
        return self._trusted
