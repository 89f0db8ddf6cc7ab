"""The records the gate's state keeps, as its callers see them (gate/cache/state.py)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.gate_messages import EventKind


@dataclass(frozen=True)
class PendingEvent:
    """One event in this gate's outbox, waiting for the hub's acknowledgement (``pending_events``).
    ``seq`` is per gate, gap-free. On the wire it becomes a ``protocol.gate_messages.GateEvent``."""

    seq: int
    event_id: bytes
    kind: EventKind
    at_ms: int
    ticket_id: bytes | None
    data: dict


@dataclass(frozen=True)
class UsageCount:
    """One gate's counters for a ticket in a zone on a day, as this gate's store keeps them
    (``last_at`` in Unix s). Relayed between gates as a ``protocol.hub_messages.UsedMark``."""

    ticket_id: bytes
    zone: str
    day: str
    gate: str
    entries: int
    exits: int
    last_at: int | None
    expires: int | None = None  # the ticket's expiry (Unix s) when known: the row is pruned after it


@dataclass(frozen=True)
class OpenAdmission:
    """An admission committed but not yet settled by the turnstile: see Validator.recover_open_admissions.

    ``pulsed`` is set (durably) just before the relay is commanded, so after a
    crash an admission that never opened anything is told apart from one a
    visitor may have walked through.
    """

    seq: int
    ticket_id: bytes
    zone: str
    day: str
    minute: int
    persons: int
    direction: str
    expires: int
    pulsed: bool
