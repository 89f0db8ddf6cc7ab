"""Whether the hub is reachable now: written by the hub sync, read by the offline policy.

The one piece of hub state the deciding side needs. The hub sync
(gate/sync/client.py) sets it from signed answers to its own pings; the
validator reads it at every decision (the engine's ``hub_online``, the
offline policy in gate.toml) and records it in each event. The composition
root builds one and hands it to both, so neither reaches into the other.
"""

from __future__ import annotations

import threading


class HubLinkState:
    """Thread-safe: the sync thread writes, the decision thread reads.

    Starts offline: a gate decides by its offline policy until the hub has
    answered and the state is in step with it. ``online=True`` at
    construction is for a handheld validator, whose operator answers for
    offline use (no hub policy applies there).
    """

    def __init__(self, online: bool = False) -> None:
        self._online = online
        self._lock = threading.Lock()

    @property
    def online(self) -> bool:
        with self._lock:
            return self._online

    def set_online(self, online: bool) -> bool:
        """Record whether the hub is reachable; True when that changed (so the caller logs the change once)."""
        with self._lock:
            changed, self._online = online != self._online, online
            return changed
