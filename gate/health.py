"""What is wrong with this gate right now, for the heartbeat and the operator.

One object shared by the validator (failed scans), the supervisor (dead or
restarting workers) and the daemon (which reports it in every heartbeat via
``GateDaemon.status``). Alarms are named conditions that stay raised until
the part that raised them clears them; counters only grow.

Thread-safe: any thread may raise, clear, count or read.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Alarm(str, enum.Enum):
    """Conditions an operator must hear about; the values are the heartbeat codes."""

    STORAGE = "storage"  # the last commit failed: scans are refused until one succeeds
    INTERNAL_ERROR = "internal_error"  # a scan hit a bug; the gate goes on, the operator must know
    WORKER_DOWN = "worker_down"  # a supervised worker is dead and restarting
    WORKER_FAILED = "worker_failed"  # a worker could not recover: the watchdog stops, systemd restarts the gate
    STATE_RESET = "state_reset"  # the state was quarantined at start and a new incarnation began


@dataclass(frozen=True)
class HealthSnapshot:
    alarms: dict[str, str]
    storage_errors: int
    internal_errors: int
    worker_restarts: int

    def as_status(self) -> dict:
        """The fields a heartbeat carries (plain types: they are CBOR-encoded by the sync client)."""
        return {"alarms": dict(self.alarms), "storage_errors": self.storage_errors,
                "internal_errors": self.internal_errors, "worker_restarts": self.worker_restarts}


class GateHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alarms: dict[str, str] = {}
        self._counts = {"storage_errors": 0, "internal_errors": 0, "worker_restarts": 0}

    def raise_alarm(self, alarm: Alarm, detail: str, key: str = "") -> None:
        """Raise (or update) an alarm; ``key`` tells apart several of one kind, e.g. one per worker."""
        name = f"{alarm.value}:{key}" if key else alarm.value
        with self._lock:
            new = name not in self._alarms
            self._alarms[name] = detail
        if new:
            log.error("alarm raised %s: %s", name, detail)

    def clear_alarm(self, alarm: Alarm, key: str = "") -> None:
        name = f"{alarm.value}:{key}" if key else alarm.value
        with self._lock:
            cleared = self._alarms.pop(name, None) is not None
        if cleared:
            log.warning("alarm cleared %s", name)

    def has_alarm(self, alarm: Alarm, key: str = "") -> bool:
        name = f"{alarm.value}:{key}" if key else alarm.value
        with self._lock:
            return name in self._alarms

    def count(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] += 1

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return HealthSnapshot(dict(self._alarms), self._counts["storage_errors"], self._counts["internal_errors"], self._counts["worker_restarts"])
