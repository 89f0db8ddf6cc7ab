"""What the hub's worker counts, and what one committed batch leaves for it to do after the commit."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from protocol.gate_messages import SnapshotRequest
from protocol.hub_messages import Ack, Pong

from .snapshot_builder import SnapshotBuild
from .store import OutboxRow


RECENT_SNAPSHOTS = 20


@dataclass
class HubStats:
    """Counters the worker updates under ``HubService.progress``; read them under it too."""

    messages: int = 0
    events_stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    acks_sent: int = 0
    used_marks: int = 0
    reports: int = 0
    snapshots_sent: int = 0
    outbox_published: int = 0
    leases_sent: int = 0
    quota_passes: int = 0
    unrelayed: int = 0
    pongs: int = 0
    pruned_events: int = 0
    batches: int = 0
    batch_seconds: float = 0.0  # time spent handling batches (decode, commit, PUBACK, publish), summed
    acked: dict[str, int] = field(default_factory=dict)
    refused_by_gate: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    recent_snapshots: deque[SnapshotBuild] = field(default_factory=lambda: deque(maxlen=RECENT_SNAPSHOTS))  # the latest builds, newest last


@dataclass
class Committed:
    """What one committed batch (or message) leaves to do after the commit, and to count."""

    acks: list[tuple[str, int, Ack]] = field(default_factory=list)
    rows: list[OutboxRow] = field(default_factory=list)
    pongs: list[tuple[str, Pong]] = field(default_factory=list)
    requests: list[tuple[str, SnapshotRequest]] = field(default_factory=list)
    events_stored: int = 0
    duplicates: int = 0
    marks: int = 0
    unrelayed: int = 0
    reports: int = 0
    published: int = 0

    def merge(self, other: "Committed") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)
