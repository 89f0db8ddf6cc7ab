"""Signed hub messages in, gate state changed: revocations, used marks, acks, leases, commands.

Every message is verified (hub key, site, stream) and checked against the
last applied seq of its stream before anything changes. A message is
applied and its seq recorded in the same durable step, so a power cut
between the two cannot apply a delta twice or skip one. A gap in a site
stream (revocations, used) means deltas were lost, typically because the
broker dropped what it queued while the gate was away: the gate asks for a
snapshot, keeps the deltas that arrive meanwhile, and applies those newer
than the snapshot once it is installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from protocol.gate_messages import SnapshotRequest
from protocol.hub_messages import (
    Command,
    REFRESH_REVOCATIONS,
    HubMessage,
    Pong,
    SequenceTracker,
    Verdict,
    decode_ack,
    decode_command,
    decode_lease,
    decode_pong,
    decode_revocations,
    decode_used,
    open_message,
)
from protocol.snapshots import Snapshot, SnapshotAssembler, decode_snapshot_chunk
from protocol.messages import MessageError
from protocol.topics import ACK, COMMAND, PONG, QUOTA, REVOCATIONS, SNAPSHOT, USED, TopicError, stream_of_hub_topic, trust_topic
from protocol.trust import TrustStore

from ..cache.revocations import RevocationSet, RevocationStoreError
from ..cache.records import UsageCount
from ..cache.state import GateStore
from ..trustlist import TrustListKeeper

log = logging.getLogger(__name__)

MAX_BUFFERED = 5000
SYNCED_KEY = "synced_incarnation"  # meta: the incarnation whose full snapshots are in


@dataclass
class InboxCounters:
    applied: int = 0
    refused: int = 0
    replays: int = 0
    gaps: int = 0
    snapshots: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What the caller must do after a message: ask for a snapshot, run a command, note an ack or a pong.

    ``acked_seq`` is set only for an ack of this gate's own incarnation (the
    outbox is already pruned); ``pong`` comes with the hub time of its envelope.
    """

    snapshot_request: SnapshotRequest | None = None
    command: Command | None = None
    acked_seq: int | None = None
    pong: Pong | None = None
    pong_at_ms: int | None = None


class HubInbox:
    """Used by the sync worker thread only; the store and the revocation set are thread-safe (the validator reads them meanwhile)."""

    def __init__(self, site: str, gate: str, store: GateStore, revocations: RevocationSet, hub_trust: TrustStore, now: Callable[[], float], *,
                 trust_lists: TrustListKeeper | None = None) -> None:
        """``trust_lists`` installs the site's trust lists (gate/trustlist.py); None ignores them."""
        self.store, self.revocations, self.hub_trust = store, revocations, hub_trust
        self.trust_lists = trust_lists
        self.site, self.gate = site, gate
        self.counters = InboxCounters()
        self._now = now
        self.tracker = SequenceTracker({**store.stream_seqs(), REVOCATIONS: revocations.sequence})
        self._assembler = SnapshotAssembler()
        self._waiting: dict[str, list[HubMessage]] = {}
        self._refreshing: set[str] = set()  # streams a full snapshot was asked for without a gap (refresh_revocations)
        self.installed: set[str] = set()  # site streams a full snapshot was installed for since start (or the last reset)

    def handle(self, topic: str, payload: bytes) -> Outcome:
        """Verify and apply one message; never raises for anything the network can send."""
        return self.handle_many([(topic, payload)])[0]

    def handle_many(self, items: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        """``handle`` for each message in order, but a run of consecutive revocation deltas is made
        durable by one write (``RevocationSet.apply_deltas``): a gate back from a partition gets
        hundreds of them at once from the broker's queue."""
        outcomes: list[Outcome] = []
        run: list[tuple[HubMessage, list[tuple[bytes, int]]]] = []
        for topic, payload in items:
            checked = self._check(topic, payload)
            if isinstance(checked, HubMessage) and checked.stream.partition("/")[0] == REVOCATIONS:
                entries = self._delta_entries(topic, checked)
                if entries is not None:
                    run.append((checked, entries))
                    self.tracker.advance(checked.stream, checked.seq)  # provisional until the run is durable
                outcomes.append(Outcome())
                continue
            self._apply_run(run)
            run = []
            outcomes.append(self._apply_checked(topic, checked) if isinstance(checked, HubMessage) else checked)
        self._apply_run(run)
        return outcomes

    def _check(self, topic: str, payload: bytes) -> HubMessage | Outcome:
        """The verified message if it is the next of its stream; otherwise what to do instead (refused, replay, gap, pong)."""
        if topic == trust_topic(self.site):
            return self._trust_list(payload)
        try:
            stream = stream_of_hub_topic(self.site, topic)
            message = open_message(payload, self.hub_trust, int(self._now()), site=self.site, stream=stream)
        except (MessageError, TopicError) as error:
            return self._refuse(topic, getattr(error, "reason", "topic"), error)
        if stream.partition("/")[0] == PONG:
            return self._pong(topic, message)  # matched by its nonce, not by seq
        verdict = self.tracker.check(stream, message.seq)
        if verdict is Verdict.REPLAY:
            self.counters.replays += 1
            log.warning("refused hub message %s seq %d: replay (last applied %d)", stream, message.seq, self.tracker.last(stream))
            return Outcome()
        if verdict is Verdict.GAP:
            return self._gap(message)
        if stream in self._refreshing:
            return self._hold(message)
        return message

    def _hold(self, message: HubMessage) -> Outcome:
        """A delta that comes while a refresh snapshot is on its way waits for it, as after a gap: applied first,
        it would be lost when a snapshot read before it replaces the set."""
        waiting = self._waiting.setdefault(message.stream, [])
        if len(waiting) < MAX_BUFFERED:
            waiting.append(message)
        return Outcome()

    def _delta_entries(self, topic: str, message: HubMessage) -> list[tuple[bytes, int]] | None:
        """The (ticket id, expiry) entries of a revocation delta; None for a malformed one (refused, its seq not advanced)."""
        try:
            return [(entry.ticket_id, entry.expires) for entry in decode_revocations(message.body)]
        except MessageError as error:
            self._refuse(topic, error.reason, error)
            return None

    def _apply_run(self, run: list[tuple[HubMessage, list[tuple[bytes, int]]]]) -> None:
        if not run:
            return
        try:
            self.revocations.apply_deltas([(message.seq, entries) for message, entries in run])
        except RevocationStoreError as error:
            self.tracker.reset(REVOCATIONS, self.revocations.sequence)  # nothing of the run is durable: the next delta is a gap
            for message, _ in run:
                self._refuse(message.stream, getattr(error, "reason", "malformed"), error)
            return
        self.counters.applied += len(run)
        tickets = sum(len(entries) for _, entries in run)
        first, last = run[0][0].seq, run[-1][0].seq
        log.info("applied revocations seq %d: %d ticket(s)%s", last, tickets, f" in {len(run)} deltas from seq {first}" if len(run) > 1 else "")

    def _apply_checked(self, topic: str, message: HubMessage) -> Outcome:
        try:
            return self._apply(message)
        except (MessageError, RevocationStoreError) as error:
            return self._refuse(topic, getattr(error, "reason", "malformed"), error)

    def _trust_list(self, payload: bytes) -> Outcome:
        """The site's trust list: signed by the site root, not the hub, and versioned, not sequenced (gate/trustlist.py)."""
        if self.trust_lists is not None:
            self.trust_lists.receive(payload)
        return Outcome()

    def _refuse(self, topic: str, reason: str, error: Exception) -> Outcome:
        self.counters.refused += 1
        self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + 1
        log.warning("refused hub message on %s: %s: %s", topic, reason, error)
        return Outcome()

    def _gap(self, message: HubMessage) -> Outcome:
        waiting = self._waiting.setdefault(message.stream, [])
        first = not waiting
        if len(waiting) < MAX_BUFFERED:
            waiting.append(message)
        self.counters.gaps += first
        if first:
            log.warning("gap in %s: have seq %d, got %d; asking the hub for a snapshot", message.stream, self.tracker.last(message.stream), message.seq)
        return Outcome(snapshot_request=SnapshotRequest(message.stream, self.tracker.last(message.stream)))

    def _pong(self, topic: str, message: HubMessage) -> Outcome:
        try:
            pong = decode_pong(message.body)
        except MessageError as error:
            return self._refuse(topic, error.reason, error)
        self.counters.applied += 1
        return Outcome(pong=pong, pong_at_ms=message.at_ms)

    def waiting_for_snapshot(self, stream: str) -> bool:
        return bool(self._waiting.get(stream)) or stream in self._refreshing

    def _apply(self, message: HubMessage) -> Outcome:
        kind = message.stream.partition("/")[0]
        outcome = Outcome()
        store = self.store
        position = (message.stream, message.seq)
        if kind == REVOCATIONS:
            entries = decode_revocations(message.body)
            self.revocations.apply_delta(message.seq, [(entry.ticket_id, entry.expires) for entry in entries])
            log.info("applied revocations seq %d: %d ticket(s)", message.seq, len(entries))
        elif kind == USED:
            marks = self._marks(decode_used(message.body))
            store.apply_usage_marks(marks, position)
        elif kind == ACK:
            ack = decode_ack(message.body)
            if ack.incarnation == store.incarnation:
                store.acknowledge(ack.acked_seq, position)
                outcome = Outcome(acked_seq=ack.acked_seq)
            else:  # an ack of a replaced incarnation: its seqs mean nothing for this outbox
                store.set_stream_seq(message.stream, message.seq)
                log.info("ignored an ack for incarnation %s (this state is %s)", ack.incarnation.hex(), store.incarnation.hex())
        elif kind == QUOTA:
            lease = decode_lease(message.body)
            if store.set_quota_lease(lease.day, lease.slot_start, lease.slot_end, lease.granted, lease.lease_id, lease.expires_ms, position):
                log.info("quota lease %d for %s slot %d-%d: %d person(s) until %d", lease.lease_id, lease.day, lease.slot_start, lease.slot_end, lease.granted, lease.expires_ms)
        elif kind == COMMAND:
            command = decode_command(message.body)
            store.set_stream_seq(message.stream, message.seq)
            if command.name == REFRESH_REVOCATIONS:
                outcome = self._refresh(REVOCATIONS)
            else:
                log.warning("hub command %s %s", command.name, command.args)
                outcome = Outcome(command=command)
        elif kind == SNAPSHOT:
            chunk = decode_snapshot_chunk(message.body)
            store.set_stream_seq(message.stream, message.seq)
            snapshot = self._assembler.add(chunk)
            if snapshot is not None:
                self._install(snapshot)
        self.tracker.advance(message.stream, message.seq)
        self.counters.applied += 1
        return outcome

    def _refresh(self, stream: str) -> Outcome:
        """Tickets were taken out of the hub's set (un-revoked): only a full snapshot drops them here."""
        self._refreshing.add(stream)
        log.info("hub asks for a fresh %s snapshot (tickets were un-revoked)", stream)
        return Outcome(snapshot_request=SnapshotRequest(stream, self.tracker.last(stream)))

    def _marks(self, marks: list, own: bool = False) -> list[UsageCount]:
        """Other gates' marks, and this gate's own only if ``own``: its own counters are authoritative while its state is in step."""
        return [UsageCount(m.ticket_id, m.zone, m.day, m.gate, m.entries, m.exits, m.at_ms // 1000, m.expires) for m in marks if own or m.gate != self.gate]

    def _install(self, snapshot: Snapshot) -> None:
        if snapshot.of == REVOCATIONS:
            self.revocations.replace_with_snapshot(snapshot.as_of, snapshot.entries)  # RevocationEntry is a (ticket_id, expires) pair
        else:
            store = self.store
            # A state whose incarnation has not got its full snapshots yet (new, wiped, quarantined, reset) lacks what
            # this gate admitted before it: the hub's marks of this gate are then the record of that, so they count too.
            own = store.get_meta(SYNCED_KEY) != store.incarnation
            store.apply_usage_marks(self._marks(snapshot.entries, own), (USED, snapshot.as_of))
        self.tracker.reset(snapshot.of, snapshot.as_of)
        self.installed.add(snapshot.of)
        self._refreshing.discard(snapshot.of)
        self.counters.snapshots += 1
        log.info("installed %s snapshot as of seq %d: %d entries", snapshot.of, snapshot.as_of, len(snapshot.entries))
        waiting = sorted(self._waiting.pop(snapshot.of, []), key=lambda message: message.seq)
        for message in waiting:
            if self.tracker.check(message.stream, message.seq) is Verdict.ACCEPT:
                try:
                    self._apply(message)
                except (MessageError, RevocationStoreError) as error:
                    self._refuse(message.stream, getattr(error, "reason", "malformed"), error)

