"""What a turnstile reports while it works: results, state, and a stream of events.

These values cross into the daemon (results, heartbeats) and into recorders (the sim's
JSON-lines file), so they are frozen dataclasses and plain enums.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class PassageResult:
    """The outcome of one admission.

    ``passed`` people walked through of ``expected`` admitted; the daemon commits
    ``passed`` and rolls back the rest. ``timed_out`` is True when the gate gave up waiting
    for the next person (False when everyone passed, or when shutdown cut the wait short).
    ``confirmed`` is False when no sensor is fitted and ``passed`` is assumed. ``error`` is
    set when the hardware failed during the admission (the relay may not have opened).
    Times are ``time.monotonic()``.
    """

    passed: int
    expected: int
    timed_out: bool
    started_at: float
    ended_at: float
    confirmed: bool = True
    error: str | None = None

    @property
    def missing(self) -> int:
        """How many admitted people did not pass: the admissions to roll back."""
        return self.expected - self.passed


@dataclass(frozen=True)
class TurnstileState:
    """A snapshot for heartbeats and the hub dashboard.

    ``relays`` maps direction ("entry", "exit") to whether its relay is energised (open).
    The ``*_ok`` flags are False while the last access to that device failed;
    ``last_error`` is the latest hardware error, kept until shutdown for the operator.
    """

    kind: str
    emergency: bool
    emergency_reason: str
    relays: Mapping[str, bool]
    relays_ok: bool
    sensor_ok: bool
    emergency_input_ok: bool
    last_error: str | None
    fail_mode: str
    admitting: str | None
    shut_down: bool


class EventKind(str, enum.Enum):
    ADMIT = "admit"
    RELAY = "relay"
    PASSAGE = "passage"
    ADMIT_DONE = "admit_done"
    REFUSE = "refuse"
    EMERGENCY = "emergency"
    ERROR = "error"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class TurnstileEvent:
    """One thing that happened, in order. Only the fields that apply to ``kind`` are set:
    RELAY: direction, on; PASSAGE: direction, passed, expected; ADMIT / ADMIT_DONE:
    direction, expected (and passed); EMERGENCY: on, reason; ERROR: reason; SHUTDOWN: on
    (relays left open), reason (fail mode)."""

    kind: EventKind
    at: float = field(compare=False)
    direction: str | None = None
    on: bool | None = None
    passed: int | None = None
    expected: int | None = None
    reason: str | None = None


TurnstileListener = Callable[[TurnstileEvent], None]
