"""What the hub keeps, behind a small interface a PostgreSQL store can also implement.

One ``HubStore`` groups four concerns (events, the outbox of hub-to-gate
messages, gate health, time-slot quotas); ``transaction()`` makes a set of calls atomic, which
is how an admission and the used mark it causes are committed together: a
crash can lose neither one without the other. All methods are called from one
thread (the hub's worker); a store is not shared between threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from protocol.hub_messages import Command, RevocationEntry, UsedMark

from protocol.gate_messages import GateEvent, HealthReport

from .ingest import TicketFacts
from .quota import GateSlot, LeaseGrant, Quota, QuotaUse, SlotReport


@dataclass(frozen=True)
class StoredBatch:
    """The outcome of storing a batch: which events were new, and each gate's contiguous seq.

    ``contiguous[(g, i)]`` is the highest seq such that every event 1..seq of
    gate ``g``'s incarnation ``i`` is stored: what the hub may acknowledge. It
    has an entry for every (gate, incarnation) with an event in the batch.
    """

    new_events: list[GateEvent]
    contiguous: dict[tuple[str, bytes], int]
    duplicates: int = 0


@dataclass(frozen=True)
class OutboxRow:
    """A hub-to-gate message recorded durably with its stream seq, to be signed and published."""

    row_id: int
    stream: str
    seq: int
    at_ms: int
    body: object


@dataclass(frozen=True)
class HubLiveness:
    """The hub worker's own record: when it last wrote, whether it stopped cleanly, and its broker link since when."""

    seen_ms: int
    running: bool
    broker_up: bool
    broker_since_ms: int


@dataclass(frozen=True)
class GateHealth:
    """The hub's current view of a gate; ``birth``/``heartbeat`` are the (checked scalar) fields last sent.

    ``incarnation`` is the gate state the latest birth named; ``resets`` counts
    the times the hub told the gate its state went backwards (``reset_ms`` the
    last: an operator alert "gate state reset"); ``refused`` counts its
    messages that failed validation.
    """

    gate: str
    online: bool
    bdseq: int | None
    last_seen_ms: int
    born_ms: int | None = None
    died_ms: int | None = None
    birth: Mapping[str, object] = field(default_factory=dict)
    heartbeat: Mapping[str, object] = field(default_factory=dict)
    acked_seq: int = 0
    incarnation: bytes | None = None
    resets: int = 0
    reset_ms: int | None = None
    refused: int = 0


class EventStore(Protocol):
    def store_events(self, events: Sequence[GateEvent], received_ms: int) -> StoredBatch:
        """Insert each event once (idempotent by event_id); call inside ``transaction()``."""

    def contiguous_seq(self, gate: str, incarnation: bytes) -> int:
        """Highest seq of the gate's incarnation below which every event is stored (0 when none)."""

    def max_seq(self, gate: str, incarnation: bytes) -> int:
        """Highest seq of the gate's incarnation stored at all: a gate about to reuse it went backwards."""

    def remember_tickets(self, facts: Sequence[TicketFacts]) -> None:
        """Keep what the hub verified of tickets, to bound later exits and rollbacks of them."""

    def ticket_facts(self, ticket_id: bytes) -> TicketFacts | None: ...

    def prune(self, events_before_ms: int, history_before_ms: int, tickets_expired_before_s: int, archive: Path | None) -> tuple[int, int]:
        """Retention: (events, history rows) dropped; events are copied to ``archive`` first when given."""

    def event_count(self) -> int: ...


class OutboxStore(Protocol):
    def next_seq(self, stream: str, count: int = 1) -> int:
        """Reserve ``count`` seqs of ``stream`` and return the first (for acks and snapshot chunks)."""

    def last_seq(self, stream: str) -> int: ...

    def add_revocations(self, entries: Sequence[RevocationEntry], reason: str | None, at_ms: int, chunk: int) -> list[OutboxRow]:
        """Record revocations and the deltas that carry them (a delta not yet taken for publishing may be joined: hub/sqlite_outbox.py)."""

    def add_used_marks(self, marks: Sequence[UsedMark], at_ms: int, chunk: int) -> list[OutboxRow]: ...

    def add_command(self, gate: str, command: Command, at_ms: int) -> OutboxRow: ...

    def unpublished(self, limit: int, after_row_id: int = 0) -> list[OutboxRow]:
        """Outbox rows after ``after_row_id`` not yet acknowledged by the broker, oldest first; none of them may change after this."""

    def mark_published(self, row_ids: Sequence[int]) -> None: ...

    def revocation_snapshot(self, now_s: int) -> tuple[int, list[RevocationEntry]]:
        """(revocations seq the set is at least as new as, every unexpired revocation)."""

    def used_snapshot(self, now_ms: int, retention_ms: int) -> tuple[int, list[UsedMark]]:
        """(used seq the set corresponds to, marks still relevant, in seq order)."""


class HealthStore(Protocol):
    def gate_health(self, gate: str) -> GateHealth | None: ...

    def save_health(self, health: GateHealth, report: HealthReport, received_ms: int) -> None:
        """Replace the gate's current state and append the report to its history."""

    def gates(self) -> list[GateHealth]: ...

    def note_hub_alive(self, now_ms: int, running: bool, broker_up: bool) -> None:
        """What the worker last knew of itself and its broker link: for tools that read the store without it (``hub gates``)."""

    def hub_liveness(self) -> HubLiveness | None: ...

    def record_reset(self, gate: str, now_ms: int) -> None:
        """Count a "gate state reset" for the operator's alert."""

    def count_refused(self, counts: dict[str, int], now_ms: int) -> None:
        """Add each gate's refused (invalid) messages to its health."""

    def published_head(self, stream: str) -> int: ...

    def republish_leases(self, gate: str, first_day: str) -> int:
        """Publish the gate's current leases again (a new gate state holds none)."""

    def history(self, gate: str, limit: int) -> list[tuple[int, str, dict]]:
        """Latest (received_ms, kind, fields) reports of ``gate``, newest first."""


class QuotaStore(Protocol):
    """Caps, the leases sent for them, and what gates said they used: the inputs of ``hub.quota.allocate``."""

    def set_quota(self, quota: Quota, at_ms: int) -> None:
        """Create the slot or change its cap."""

    def quotas(self, first_day: str | None = None, last_day: str | None = None) -> list[Quota]:
        """Slots of days in ``first_day..last_day`` (inclusive, either open), by day and start."""

    def add_quota_uses(self, uses: Sequence[QuotaUse]) -> None:
        """Count the persons of NEW events only (the caller passes ``StoredBatch.new_events``'s), so a resent event counts once."""

    def save_quota_reports(self, gate: str, reports: Sequence[SlotReport]) -> None:
        """Keep each slot's newest report and drop the leases it shows the gate replaced (``hub.quota.record_report``)."""

    def quota_ledger(self, day: str, slot_start: int, recent_since_ms: int) -> list[GateSlot]:
        """Every gate with a lease, use or report in the slot; ``online`` is left False for the caller to fill."""

    def add_leases(self, quota: Quota, grants: Sequence[LeaseGrant], at_ms: int) -> list[OutboxRow]:
        """Record each lease and its outbox row on quota/<gate>; the lease_id is the row's stream seq."""


class HubStore(EventStore, OutboxStore, HealthStore, QuotaStore, Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together durably, or not at all."""

    def changed_elsewhere(self) -> bool:
        """True when another connection (the CLI) committed since the last call."""

    def close(self) -> None: ...
