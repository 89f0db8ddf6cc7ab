"""The hub's worker: one thread that owns the store and turns gate messages into state.

Threads and queues, nothing shared otherwise: paho's network thread fills
``inbound`` (gate messages) and ``pubacks``; this worker drains ``inbound``
in batches, and for each batch, in ONE transaction, stores the events
(idempotent by event id), appends the used marks they cause to the outbox,
applies birth/death/heartbeat reports and reserves ack seqs. Only after the
commit does it PUBACK the batch's MQTT messages, publish the signed acks
(each gate: every event up to this seq is durable) and publish the used
marks. Snapshot requests are handed to the snapshot builder after that
(hub/snapshot_builder.py: its own threads and database connection, so a
snapshot of a million revocations never delays a pong). Between batches it
publishes outbox rows other processes recorded (``lungta hub revoke``),
noticed through SQLite's data_version.

Quotas: the batch's transaction also counts the persons of new quota events
and keeps the slot reports of heartbeats; between batches the worker runs
``hub.quota.allocate`` for the slots that changed (and for every open slot
on a timer), records the leases with their outbox rows in one transaction,
and only then publishes them, like every other outbox row.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from nacl.signing import SigningKey

from protocol.gate_messages import GateEvent, HealthReport, Ping, SnapshotRequest
from protocol.hub_messages import REFRESH_REVOCATIONS, Ack, Pong, ack_body, pong_body
from protocol.keys import kid_for, load_signing_key, load_verify_key
from transport.mqtt import MqttLink
from protocol.topics import COMMAND, HEARTBEAT, REVOCATIONS, SITE_STREAMS, ack_stream, hub_subscription, pong_stream
from protocol.trust import TrustStore, load_trust_store

from .agreement import SettingsWatch, hub_settings
from .config import HubConfig
from .health import apply_report, status
from .ingest import EventChecker, TicketFacts
from .intake import FairQueue, Intake, RateLimit, Unit, read_batch
from .progress import Committed, HubStats
from .publisher import Publisher
from .quota import GateSlot, Quota, QuotaPolicy, allocate, slot_window_ms, used
from .quota_reports import quota_use, slot_reports, unleased_use
from .snapshot_builder import SnapshotBuild, SnapshotBuilder
from .sqlite_snapshots import SqliteSnapshotReader
from .sqlite_store import SqliteHubStore
from .sqlite_tables import HubStoreError
from .store import HubStore, OutboxRow
from .trustlist import HubTrustLists

log = logging.getLogger(__name__)

USED_CHUNK = 500
OUTBOX_PAGE = 1000
POLL_S = 0.05
SNAPSHOT_COOLDOWN_S = 2.0
QUOTA_MIN_PASS_S = 0.05  # slots changed by a stream of batches are reallocated at most this often
PRUNE_EVERY_S = 3600.0
ALIVE_EVERY_S = 5.0  # how often the worker records that it runs (hub/health.py: HUB_SILENT_MS)


class HubService:
    def __init__(self, config: HubConfig, store: HubStore, link: MqttLink, key: SigningKey, inbound: queue.Queue, clock: Callable[[], float] = time.time,
                 ticket_trust: TrustStore | None = None, rate: RateLimit | None = None) -> None:
        """``ticket_trust`` holds the issuers' keys: without it the hub relays used marks it cannot verify (logged at start).
        ``rate`` is the per-gate event limit, shared with the link's ``drop`` filter."""
        self.config = config
        self.store = store
        self.link = link
        self.inbound = inbound
        self.publisher = Publisher(link, key, config.site)
        self.snapshots = SnapshotBuilder(lambda: SqliteSnapshotReader(config.database), Publisher(link, key, config.site), config.snapshot_chunk,
                                         config.used_retention_days * 86_400_000, clock, self._snapshot_sent)
        self.stats = HubStats()
        self.progress = threading.Condition()
        self.clock = clock
        self._outbox_cursor = 0
        self._outbox_dirty = True
        self._published_ids: list[int] = []
        self._last_snapshot: dict[tuple[str, str], float] = {}
        self._quota_policy = QuotaPolicy(config.quota_lease_s * 1000, config.quota_skew_s * 1000)
        self._quota_tick_ms = min(1000, max(50, self._quota_policy.lease_ms // 6))
        self._quota_dirty: set[tuple[str, int]] = set()
        self._over_cap: dict[tuple[str, int], int] = {}  # slot -> persons admitted when last reported over its cap
        self._quota_all = True  # at start: every gate must hold a lease of every slot
        self._quota_next_tick = 0
        self._quota_last_pass = -QUOTA_MIN_PASS_S
        self.checker = EventChecker(config.site, ticket_trust, config.used_retention_days * 86_400_000)
        self._rate = rate or RateLimit(config.gate_event_rate, config.gate_event_burst)
        self._pong_seq = self._now_ms()
        self._next_prune = 0.0
        self._alive_noted: tuple[float, bool] | None = None  # (monotonic time, broker up) of the last record
        self._queue = FairQueue(inbound)
        self.settings_watch = SettingsWatch(hub_settings(config.heartbeat_interval_s, config.timezone.key, kid_for(key.verify_key)))
        for stream in SITE_STREAMS:
            self.publisher.heads[stream] = store.published_head(stream)
        # the site's trust list (hub.toml site_root), once one is recorded, replaces ticket_trust
        self.trust_lists = HubTrustLists(config.database, load_verify_key(config.site_root), config.site, self.checker) if config.site_root is not None else None
        if ticket_trust is None and (self.trust_lists is None or self.trust_lists.current is None):
            log.warning("no issuer trust in the hub config: used marks are relayed as the gates claim them, unverified (docs/security.md)")

    @classmethod
    def from_config(cls, config: HubConfig, clock: Callable[[], float] = time.time) -> "HubService":
        """``clock`` is the hub time (Unix s) of leases and health; tests pass one they can move."""
        inbound: queue.Queue = queue.Queue()
        rate = RateLimit(config.gate_event_rate, config.gate_event_burst)
        link = MqttLink(config.broker, [hub_subscription(config.site)], inbound, queue.Queue(), drop=rate.should_drop)
        store = SqliteHubStore(config.database, config.synchronous)
        trust = load_trust_store(config.trust) if config.trust is not None else None
        service = cls(config, store, link, load_signing_key(config.key), inbound, clock, trust, rate)
        try:
            service.snapshots.open()  # here, so a database the builder cannot read is the same one line as the store's
        except HubStoreError:
            store.close()
            if service.trust_lists is not None:
                service.trust_lists.close()
            raise
        return service

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def wait_for(self, predicate: Callable[[HubStats], bool], timeout: float) -> bool:
        """Block until ``predicate(stats)`` holds (checked after every batch) or ``timeout``."""
        with self.progress:
            return self.progress.wait_for(lambda: predicate(self.stats), timeout)

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; the link is started and stopped here."""
        self.snapshots.start()
        self.link.start()
        try:
            while not stop.is_set():
                batch = self._take()
                if batch:
                    self._timed_handle(batch)
                self._housekeeping()
        finally:
            self.snapshots.stop()
            self.link.stop()
            self._flush_published()
            try:
                self._note_alive(running=False)
            except sqlite3.Error as error:  # the store went away under a stopping hub: the record just ages
                log.warning("could not record the hub's stop in its database: %s", error)
            self.store.close()
            if self.trust_lists is not None:
                self.trust_lists.close()

    def _timed_handle(self, batch: list) -> None:
        started = time.perf_counter()
        self._handle(batch)
        with self.progress:
            self.stats.batches += 1
            self.stats.batch_seconds += time.perf_counter() - started

    def _take(self) -> list:
        return self._queue.take(POLL_S)

    def _housekeeping(self) -> None:
        self._published_ids.extend(self.publisher.collect_published())
        if self._published_ids and self.inbound.empty():
            self._flush_published()
        if self.store.changed_elsewhere():
            self._outbox_dirty = self._quota_all = True  # e.g. ``lungta hub quota set``
            if self.trust_lists is not None:
                self.trust_lists.changed()  # e.g. ``lungta hub trust publish``
        if self.trust_lists is not None:
            self.trust_lists.tick(self.link)
        if self._outbox_dirty and self.link.connected.is_set():
            self._publish_outbox()
        if self.link.connected.is_set():
            self._run_quotas()
        if time.monotonic() >= self._next_prune:
            self._prune()
        self._note_alive()

    def _note_alive(self, running: bool = True) -> None:
        """Every ALIVE_EVERY_S, at each change of the broker link, and at a clean stop: ``lungta hub gates``
        reads it to tell 'the gates went silent' from 'the hub (or its broker) is not there to hear them'."""
        now, up = time.monotonic(), self.link.connected.is_set()
        if running and self._alive_noted is not None and self._alive_noted[1] == up and now - self._alive_noted[0] < ALIVE_EVERY_S:
            return
        self.store.note_hub_alive(self._now_ms(), running, up)
        self._alive_noted = (now, up)

    def _prune(self) -> None:
        """Retention (hub.toml): old events (archived first when configured) and gate history, once an hour."""
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        now_ms, day_ms = self._now_ms(), 86_400_000
        events, history = self.store.prune(now_ms - self.config.event_retention_days * day_ms, now_ms - self.config.history_retention_days * day_ms,
                                           now_ms // 1000 - self.config.used_retention_days * 86_400, self.config.event_archive)
        if events or history:
            log.info("retention: pruned %d event(s) and %d gate history row(s)", events, history)
        with self.progress:
            self.stats.pruned_events += events
            self.progress.notify_all()

    def _flush_published(self) -> None:
        self._published_ids.extend(self.publisher.collect_published())
        if self._published_ids:
            self.store.mark_published(self._published_ids)
            with self.progress:
                self.stats.outbox_published += len(self._published_ids)
                self.progress.notify_all()
            self._published_ids = []

    def _publish_outbox(self) -> None:
        rows = self.store.unpublished(OUTBOX_PAGE, self._outbox_cursor)
        if any(is_refresh(row) for row in rows):  # before the gates can ask: none may get a set read before the un-revocation
            self.snapshots.overtaken(REVOCATIONS)
        self.publisher.publish_rows(rows)
        if rows:
            self._outbox_cursor = rows[-1].row_id
        self._outbox_dirty = len(rows) == OUTBOX_PAGE

    def _handle(self, batch: list) -> None:
        """Decode, commit, PUBACK, then publish; no single message can stop the worker."""
        now_ms = self._now_ms()
        intake = read_batch(batch, self.config.site, self._rate)
        intake.limited.update(self._rate.collect_dropped())
        if intake.reconnected:
            self._outbox_cursor, self._outbox_dirty = 0, True  # paho resends its own; the cursor finds the rest
            if self.trust_lists is not None:
                self.trust_lists.reconnected()  # retained again, in case the broker lost it
        try:
            done = self._commit(intake.units, now_ms)
        except Exception:  # noqa: BLE001 - last guard: find the one message that fails, keep the rest
            log.exception("a batch of %d message(s) failed to commit; committing them one by one", len(intake.units))
            done = self._commit_singly(intake, now_ms)
        refused = {gate: count for gate, count in (intake.refused + intake.limited).items() if gate != "(bad topic)"}
        if refused:
            self.store.count_refused(refused, now_ms)
        for mid, qos in [(unit.mid, unit.qos) for unit in intake.units] + intake.refused_mids:
            self.link.ack(mid, qos)
        self._publish_answers(done, now_ms)
        self._count(intake, done)

    def _commit_singly(self, intake: Intake, now_ms: int) -> Committed:
        done = Committed()
        for unit in intake.units:
            try:
                done.merge(self._commit([unit], now_ms))
            except Exception:  # noqa: BLE001 - last guard: this message is refused, logged and counted; the others go on
                log.exception("refused message of gate %s: it cannot be stored", unit.gate)
                intake.refused[unit.gate] += 1
        return done

    def _commit(self, units: list[Unit], now_ms: int) -> Committed:
        """One transaction: events, the marks and quota counts the hub believes, reports, ack and pong answers."""
        done = Committed()
        events = [event for unit in units for event in unit.events]
        with self.store.transaction():
            # pings first: a ping names the gate's next seq when it was sent, and events the
            # gate made after it may be in this same batch; they must not look like a rollback
            done.pongs = [(unit.gate, self._pong(unit.gate, unit.ping, now_ms)) for unit in units if unit.ping is not None]
            stored = self.store.store_events(events, now_ms)
            self._relay(stored.new_events, now_ms, done)
            for unit in units:
                if unit.report is not None:
                    self._apply_report(unit.gate, unit.report, now_ms, done)
                if unit.request is not None:
                    done.requests.append((unit.gate, unit.request))
            for (gate, incarnation), acked in stored.contiguous.items():
                done.acks.append((gate, self.store.next_seq(ack_stream(gate)), Ack(incarnation, acked)))
            if self._published_ids:
                self.store.mark_published(self._published_ids)
                done.published += len(self._published_ids)
                self._published_ids = []
        done.events_stored, done.duplicates = len(stored.new_events), stored.duplicates
        return done

    def _relay(self, events: list[GateEvent], now_ms: int, done: Committed) -> None:
        """The used marks and quota counts of new events, as far as the hub can check them."""
        facts = {fact.ticket_id: fact for fact in filter(None, map(self.checker.verify, events))}
        if facts:
            self.store.remember_tickets(list(facts.values()))
        marks, uses = [], []
        unrelayed: dict[str, tuple[int, str]] = {}
        day_quotas: dict[str, list[Quota]] = {}

        def known(ticket_id: bytes) -> TicketFacts | None:
            return facts.get(ticket_id) or self.store.ticket_facts(ticket_id)

        def quotas_of(day: str) -> list[Quota]:
            if day not in day_quotas:
                day_quotas[day] = self.store.quotas(first_day=day, last_day=day)
            return day_quotas[day]

        for event in events:
            checked = self.checker.check(event, now_ms, known)
            if checked.refused:
                count, first = unrelayed.get(event.gate, (0, f"seq {event.seq} ({event.kind.value}): {checked.refused}"))
                unrelayed[event.gate] = (count + 1, first)
                done.unrelayed += 1
            if checked.mark is not None:
                marks.append(checked.mark)
            use = quota_use(event) if checked.quota_persons is not None else None
            if use is not None and checked.quota_persons is not None:
                uses.append(replace(use, persons=checked.quota_persons))
            elif checked.mark is not None and event.ticket_id is not None:
                unleased = unleased_use(event, known(event.ticket_id), quotas_of, self.config.timezone)
                if unleased is not None:
                    uses.append(unleased)  # a relayed admission no lease counted: in the slot its time falls in
        for gate, (count, first) in unrelayed.items():  # one line per gate and batch: a flood of lies must not flood the log
            log.warning("gate %s: %d event(s) stored but not relayed; first: %s", gate, count, first)
        if marks:
            done.rows += self.store.add_used_marks(marks, now_ms, USED_CHUNK)
            done.marks += len(marks)
        if uses:
            self.store.add_quota_uses(uses)
            self._quota_dirty.update((use.day, use.slot_start) for use in uses)

    def _apply_report(self, gate: str, report: HealthReport, now_ms: int, done: Committed) -> None:
        current = self.store.gate_health(gate)
        health = apply_report(current, gate, report, now_ms)
        done.reports += 1
        if current is not None and report.incarnation is not None and current.incarnation not in (None, report.incarnation):
            log.warning("gate %s runs a new state (incarnation %s, was %s): sending its leases again", gate, report.incarnation.hex(), current.incarnation.hex())
            self._resend_leases(gate, now_ms)
            self._end_snapshot_cooldown(gate)
        if health is None:
            log.info("ignored stale %s of gate %s (bdseq %s)", report.kind, gate, report.bdseq)
            return
        self.store.save_health(health, report, now_ms)
        self._note_quota_report(gate, report)
        if report.settings is not None:
            self.settings_watch.note(gate, report.settings)

    def _pong(self, gate: str, ping: Ping, now_ms: int) -> Pong:
        """The answer to a ping; a gate about to reuse seqs the hub already holds is told to reset."""
        stored = self.store.max_seq(gate, ping.incarnation)
        reset = stored >= ping.next_seq
        if reset:
            log.warning("gate state reset: gate %s incarnation %s is at seq %d but the hub holds up to %d; told to start a new incarnation",
                        gate, ping.incarnation.hex(), ping.next_seq - 1, stored)
            self.store.record_reset(gate, now_ms)
            self._resend_leases(gate, now_ms)
            self._end_snapshot_cooldown(gate)
        heads = {stream: self.publisher.heads.get(stream, 0) for stream in SITE_STREAMS}
        return Pong(ping.nonce, ping.incarnation, self.store.contiguous_seq(gate, ping.incarnation), heads, reset)

    def _resend_leases(self, gate: str, now_ms: int) -> None:
        self._flush_published()  # first, so a lease just acknowledged by the broker is not marked published again after this
        yesterday = (datetime.fromtimestamp(now_ms / 1000, self.config.timezone) - timedelta(days=1)).date().isoformat()
        if self.store.republish_leases(gate, yesterday):
            self._outbox_cursor, self._outbox_dirty = 0, True

    def _publish_answers(self, done: Committed, now_ms: int) -> None:
        for gate, seq, ack in done.acks:
            self.publisher.publish(ack_stream(gate), seq, now_ms, ack_body(ack))
        self.publisher.publish_rows(done.rows)
        for gate, pong in done.pongs:
            self._pong_seq += 1  # pongs are matched by nonce, not seq: a counter in memory is enough
            self.publisher.publish(pong_stream(gate), self._pong_seq, now_ms, pong_body(pong))
        for gate, request in done.requests:
            self._answer(gate, request)

    def _count(self, intake: Intake, done: Committed) -> None:
        with self.progress:
            stats = self.stats
            stats.messages += len(intake.units) + len(intake.refused_mids)
            stats.events_stored += done.events_stored
            stats.duplicates += done.duplicates
            stats.malformed += sum(intake.refused.values())
            stats.refused_by_gate.update(intake.refused)
            stats.rate_limited.update(intake.limited)
            stats.acks_sent += len(done.acks)
            stats.used_marks += done.marks
            stats.unrelayed += done.unrelayed
            stats.reports += done.reports
            stats.pongs += len(done.pongs)
            stats.outbox_published += done.published
            stats.acked.update({gate: ack.acked_seq for gate, _, ack in done.acks})
            self.progress.notify_all()

    # ---- quotas ----

    def _note_quota_report(self, gate: str, report: HealthReport) -> None:
        """Keep a heartbeat's slot reports; a birth or death changes who is online, so every slot is looked at."""
        if report.kind != HEARTBEAT:
            self._quota_all = True
            return
        reports = slot_reports(gate, report)
        if reports:
            self.store.save_quota_reports(gate, reports)
            self._quota_dirty.update((item.day, item.slot_start) for item in reports)

    def _run_quotas(self) -> None:
        """Reallocate the slots that changed, and every open slot once per tick; record, then publish."""
        now_ms = self._now_ms()
        tick = now_ms >= self._quota_next_tick
        if not (tick or self._quota_all or self._quota_dirty) or time.monotonic() - self._quota_last_pass < QUOTA_MIN_PASS_S:
            return
        self._quota_last_pass = time.monotonic()
        if tick:
            self._quota_next_tick = now_ms + self._quota_tick_ms
        everything, dirty = self._quota_all, self._quota_dirty
        self._quota_all, self._quota_dirty = False, set()
        rows = self._allocate(now_ms, lambda quota: everything or quota.key in dirty, tick)
        if rows:
            log.debug("sending %d quota lease(s) on %s", len(rows), ", ".join(sorted({row.stream for row in rows})))
        self.publisher.publish_rows(rows)
        with self.progress:
            self.stats.leases_sent += len(rows)
            self.stats.quota_passes += 1
            self.progress.notify_all()

    def _allocate(self, now_ms: int, wanted: Callable[[Quota], bool], tick: bool) -> list[OutboxRow]:
        """Leases for the wanted slots (and, on a tick, every open one), recorded in one transaction."""
        policy, zone = self._quota_policy, self.config.timezone
        yesterday = (datetime.fromtimestamp(now_ms / 1000, zone) - timedelta(days=1)).date().isoformat()
        rows: list[OutboxRow] = []
        with self.store.transaction():
            online: dict[str, bool] | None = None
            for quota in self.store.quotas(first_day=yesterday):
                opens_ms, closes_ms = window = slot_window_ms(quota, zone)
                if closes_ms <= now_ms or not (wanted(quota) or (tick and opens_ms - policy.lease_ms <= now_ms)):
                    continue
                online = online_gates(self.store, now_ms, self.config.heartbeat_interval_s) if online is None else online
                gates = gate_slots(self.store, quota, online, now_ms - policy.lease_ms)
                self._report_over_cap(quota, gates)
                rows += self.store.add_leases(quota, allocate(quota, window, gates, now_ms, policy), now_ms)
        return rows

    def _report_over_cap(self, quota: Quota, gates: list[GateSlot]) -> None:
        """Say so once per slot and count when more persons were admitted than the cap."""
        admitted = sum(used(slot) for slot in gates)
        if admitted > quota.cap and self._over_cap.get(quota.key) != admitted:
            self._over_cap[quota.key] = admitted
            log.error("slot %s %s: %d person(s) admitted, cap %d, %d over (admissions under no lease, or a cap lowered below what was used)",
                      quota.day, quota.slot, admitted, quota.cap, admitted - quota.cap)

    def _end_snapshot_cooldown(self, gate: str) -> None:
        """A new state of ``gate`` has none of the snapshots sent to the old one: its first requests are answered at once
        (the gate itself asks again only after ``snapshot_retry_seconds``, longer than it waits to catch up at start)."""
        for key in [key for key in self._last_snapshot if key[0] == gate]:
            del self._last_snapshot[key]

    def _answer(self, gate: str, request: SnapshotRequest) -> None:
        """Hand ``gate``'s request to the snapshot builder, unless the gate asked for this stream in the last SNAPSHOT_COOLDOWN_S."""
        key = (gate, request.stream)
        if time.monotonic() - self._last_snapshot.get(key, -SNAPSHOT_COOLDOWN_S) < SNAPSHOT_COOLDOWN_S:
            return
        self._last_snapshot[key] = time.monotonic()
        if self.snapshots.request(gate, request.stream):
            log.info("gate %s asked for a %s snapshot (it had seq %d)", gate, request.stream, request.from_seq)

    def _snapshot_sent(self, build: SnapshotBuild) -> None:
        """Called by the snapshot builder's threads once a build is published."""
        with self.progress:
            self.stats.snapshots_sent += len(build.gates)
            self.stats.recent_snapshots.append(build)
            self.progress.notify_all()


def is_refresh(row: OutboxRow) -> bool:
    """An outbox row telling a gate to take a fresh revocation snapshot (hub/console/actions.py, after an un-revocation)."""
    return row.stream.partition("/")[0] == COMMAND and isinstance(row.body, dict) and row.body.get("name") == REFRESH_REVOCATIONS


def online_gates(store: HubStore, now_ms: int, heartbeat_interval_s: int) -> dict[str, bool]:
    """Every known gate, and whether it is connected and heard from lately.

    A gate whose connection is up but silent for three heartbeats is treated
    as cut off: renewing its lease would only lock places away.
    """
    stale_ms = 3 * heartbeat_interval_s * 1000
    return {health.gate: status(health, now_ms, stale_ms) == "online" for health in store.gates()}


def gate_slots(store: HubStore, quota: Quota, online: dict[str, bool], recent_since_ms: int) -> list[GateSlot]:
    """The slot's ledger for every gate known or holding a lease in it, with ``online`` filled in."""
    ledger = {slot.gate: slot for slot in store.quota_ledger(quota.day, quota.slot_start, recent_since_ms)}
    for gate in online.keys() - ledger.keys():
        ledger[gate] = GateSlot(gate)
    return [replace(slot, online=online.get(gate, False)) for gate, slot in sorted(ledger.items())]
