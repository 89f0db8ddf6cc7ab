"""Telling a session taken over by another client with our login from other disconnects.

The broker lets one client per login in (``use_username_as_clientid``).
When a second hub for the site, or a second gate with the same gate id, logs
in, the broker drops the older connection; without a check the dropped one
reconnects at once and drops the other, and the two fight every second. A
broker that speaks MQTT v5 says so (DISCONNECT reason 142, "Session taken
over"); Mosquitto 2.0 just closes the socket. ``TakeoverWatch`` recognises
the pattern then: sessions the broker closes without any reason while its
port still accepts connections (``MqttLink`` checks that at the close, with
``link_diagnosis.listening``) and lets straight back in; a broker that
restarts refuses connects for a while instead. It decides; ``MqttLink``
logs and backs off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SESSION_TAKEN_OVER = 142  # MQTT v5 DISCONNECT reason: another client connected with this client id
BACKOFF_S, BACKOFF_MAX_S = 30, 300  # a client kicked off waits this long (doubling) before it kicks back
WINDOW_S = 3600.0  # takeovers counted over this window (heartbeats report them; the backoff grows with them)
SILENT_CLOSES, SILENT_WINDOW_S = 3, 600.0


class TakeoverWatch:
    """Bookkeeping of one link's closes and takeovers; called from paho's thread only (``count`` from any)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._takeovers: list[float] = []
        self._silent: list[float] = []  # silent closes each followed by a connect that succeeded at once
        self._pending: float | None = None  # the last silent close, until the next connect says which kind it was

    def connected(self) -> None:
        """A connect succeeded: a silent close just before it let us straight back in."""
        if self._pending is not None:
            self._silent.append(self._pending)
            self._pending = None

    def connect_failed(self) -> None:
        """A connect failed: the broker was away, not busy with another client of ours."""
        self._pending = None

    def closed_silently(self) -> bool:
        """The broker closed an established session with no DISCONNECT and no socket error; true when that makes a takeover."""
        now = self._clock()
        self._silent = [at for at in self._silent if at >= now - SILENT_WINDOW_S]
        self._pending = now
        return len(self._silent) + 1 >= SILENT_CLOSES

    @property
    def silent_closes(self) -> int:
        """Silent closes in the window, the latest one included."""
        return len(self._silent) + (self._pending is not None)

    def taken_over(self) -> int:
        """Record a takeover; how many seconds to wait before reconnecting (doubling with each in the window)."""
        now = self._clock()
        self._takeovers = [at for at in self._takeovers if at >= now - WINDOW_S] + [now]
        return min(BACKOFF_S * 2 ** (len(self._takeovers) - 1), BACKOFF_MAX_S)

    def count(self) -> int:
        """Takeovers in the last ``WINDOW_S``."""
        since = self._clock() - WINDOW_S
        return sum(1 for at in list(self._takeovers) if at >= since)
