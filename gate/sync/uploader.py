"""Which outbox events to send next: a window of unacknowledged events, resent when stuck.

No I/O and no clock of its own (the caller passes monotonic seconds), so the
rules are tested directly. An event leaves the gate's outbox only when the
hub's signed ack covers it (``GateStore.acknowledge``); until then it may be
sent again (after a reconnect, or when acks stop coming), and the hub stores
it once, by event id. The broker's PUBACK is not enough to prune: it says
the broker has the message, not that the hub has stored it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Uploader:
    """``window``, ``batch`` and ``resend_after`` come from ``SyncSettings`` (their defaults live there)."""

    acked: int
    window: int
    batch: int
    resend_after: float
    sent: int = 0
    _progress_at: float = 0.0

    def __post_init__(self) -> None:
        self.sent = max(self.sent, self.acked)

    def next_batch(self, now: float) -> tuple[int, int] | None:
        """(after_seq, limit) of the next events to publish, or None while the window is full."""
        if self.sent > self.acked and now - self._progress_at > self.resend_after:
            self.sent = self.acked  # acks stopped: the broker or the hub lost them; send again
            self._progress_at = now
        room = self.window - (self.sent - self.acked)
        if room <= 0:
            return None
        return self.sent, min(self.batch, room)

    def published(self, last_seq: int, now: float) -> None:
        if self.sent == self.acked:
            self._progress_at = now
        self.sent = max(self.sent, last_seq)

    def on_ack(self, seq: int, now: float) -> None:
        if seq > self.acked:
            self.acked = seq
            self._progress_at = now
        self.sent = max(self.sent, self.acked)

    def on_reconnect(self) -> None:
        """Everything unacknowledged goes again: the old session may have lost it."""
        self.sent = self.acked
