"""Exponential backoff for reopening a device that vanished.

Pure: it hands out delays and the caller waits them on its stop event, so a
gate shutting down never sits out a long delay.
"""

from __future__ import annotations

from .errors import SettingsError


class Backoff:
    """Delays ``initial``, ``initial * factor``, ... capped at ``maximum``; ``reset`` after a success."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        if not 0 < initial <= maximum:
            raise SettingsError(f"backoff: need 0 < initial ({initial}) <= maximum ({maximum})")
        if factor < 1:
            raise SettingsError(f"backoff: factor {factor} must be at least 1")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._maximum, self._next * self._factor)
        return delay

    def reset(self) -> None:
        self._next = self._initial
