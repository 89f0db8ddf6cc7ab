"""One code held in front of a reader is one scan, not one per frame or repeat.

A text is reported when it has not been seen for ``window`` seconds; every
sighting restarts its window, so a phone held still for a minute in front of
a 30 fps camera is reported once, and shown again after the visitor stepped
away it is reported again (the engine then answers "already used").
"""

from __future__ import annotations

from collections import OrderedDict

from .errors import SettingsError

DEFAULT_CAPACITY = 1024


class Deduplicator:
    """Pure and single-threaded: the caller passes the time of every sighting.

    Memory is bounded: texts unseen for a window are forgotten, and at most
    ``capacity`` texts are remembered (the least recently seen go first), so
    a stream of distinct junk cannot grow it.
    """

    def __init__(self, window: float, capacity: int = DEFAULT_CAPACITY) -> None:
        if window < 0:
            raise SettingsError(f"dedupe window {window} must not be negative")
        if capacity < 1:
            raise SettingsError(f"dedupe capacity {capacity} must be at least 1")
        self.window = window
        self._capacity = capacity
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def should_report(self, text: str, now: float) -> bool:
        """Record a sighting of ``text`` at ``now``; True when it is a new scan.

        A clock that went backwards (a video looped, a media clock restarted)
        counts as "just seen": suppressing one repeat is safer than
        reporting a held code twice.
        """
        self._forget_unseen_since(now)
        last = self._last_seen.pop(text, None)
        self._last_seen[text] = now
        if len(self._last_seen) > self._capacity:
            self._last_seen.popitem(last=False)
        return last is None or now - last > self.window

    def __len__(self) -> int:
        return len(self._last_seen)

    def _forget_unseen_since(self, now: float) -> None:
        # Ordered by last sighting, so expired texts are all at the front. The test is written
        # as in should_report (now - seen > window) so float rounding cannot make them disagree.
        while self._last_seen:
            text, seen = next(iter(self._last_seen.items()))
            if now - seen <= self.window:
                return
            del self._last_seen[text]
