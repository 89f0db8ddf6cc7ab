"""The live view every dashboard and /metrics read: gates, today's tallies, alerts, site totals.

One thread (``LiveFeed.run``) owns it. It polls the hub database's
``data_version`` every ``POLL_S`` and recomputes when anything committed
(and at least once a second, so a gate going stale shows without a write).
New events are read incrementally per (gate, incarnation), by seq up to its
contiguous seq (what the hub has stored without holes), so each event is
counted once and the events table needs no extra index. Each change makes a
new ``Snapshot`` with a higher version; SSE clients block in ``wait_newer``.
The same thread logs each gate's online/offline transition with its cause,
the hub log's record of who dropped when.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from protocol.gate_messages import GateSettings

from ..agreement import hub_settings, stored_disagreements
from ..config import HubConfig
from ..health import status
from ..quota_text import slot_row
from ..trustlist import latest_version as latest_trust_version
from . import queries
from .alerts import AlertBook
from .settings import HttpSettings
from .store import ConsoleStore

log = logging.getLogger("hub.gates")  # the transitions, filterable apart from the rest of the hub's log

POLL_S = 0.1
MIN_REFRESH_S = 0.4  # a busy hub commits every batch; recomputing 300 gates more often would cost the worker's GIL
MAX_SHARE = 0.1      # ...and when a refresh is slow (a loaded machine), refresh less often: at most this share of the time
REFRESH_S = 1.0
RATE_WINDOW_MS = 60_000


@dataclass
class Tally:
    """One gate's day so far."""

    reasons: Counter = field(default_factory=Counter)
    admissions: int = 0
    persons: int = 0
    refusals: int = 0
    exits: int = 0
    flagged: int = 0
    last_scan_ms: int | None = None
    recent: deque = field(default_factory=deque)  # (at_ms, persons) of admissions in the last minute
    recent_persons: int = 0  # the sum over ``recent``, kept as it changes
    version: int = 0  # counts changes, so an unchanged gate's view is reused

    def add(self, event: queries.EventRow) -> None:
        self.version += 1
        self.reasons[event.reason] += 1
        if self.last_scan_ms is None or event.at_ms > self.last_scan_ms:
            self.last_scan_ms = event.at_ms
        if event.kind == "admission":
            persons = int(event.data.get("persons", 1) or 1)
            self.admissions += 1
            self.persons += persons
            self.recent.append((event.at_ms, persons))
            self.recent_persons += persons
            self.flagged += bool(event.data.get("flagged"))
        elif event.kind == "deny":
            self.refusals += 1
        elif event.kind == "exit":
            self.exits += 1

    def per_minute(self, now_ms: int) -> int:
        while self.recent and self.recent[0][0] <= now_ms - RATE_WINDOW_MS:
            self.recent_persons -= self.recent.popleft()[1]
        return self.recent_persons


@dataclass(frozen=True)
class Snapshot:
    version: int
    at_ms: int
    data: dict  # site, day, broker_up, gates, totals, quotas, alerts, hub

    @functools.cached_property
    def json(self) -> str:
        """Encoded once, however many dashboards are open."""
        return json.dumps({"version": self.version, "at_ms": self.at_ms, **self.data}, separators=(",", ":"))


class LiveFeed:
    def __init__(self, config: HubConfig, settings: HttpSettings, broker_up: Callable[[], bool], hub_stats: Callable[[], dict], clock: Callable[[], float] = time.time,
                 hub: GateSettings | None = None) -> None:
        """``hub``: the hub's settings the gates' must agree with (hub/agreement.py); by default from ``config``, without the hub key."""
        self._hub_settings = hub or hub_settings(config.heartbeat_interval_s, config.timezone.key, None)
        self.config, self.settings = config, settings
        self._broker_up, self._hub_stats, self._clock = broker_up, hub_stats, clock
        self._changed = threading.Condition()
        self._snapshot = Snapshot(0, 0, {})
        self._book = AlertBook(settings)
        self._tallies: dict[str, Tally] = {}
        self._cursor: dict[queries.Stream, int] = {}  # by (gate, incarnation): each gate state's seqs start at 1
        self._day = ""
        self._last_status: dict[str, str] = {}
        self._resets: dict[str, int] = {}  # each gate's GateHealth.resets as last seen, to log a new reset once
        self._store: ConsoleStore | None = None
        self._progress: dict[queries.Stream, int] = {}
        self._blobs: dict[bytes, dict] = {}  # decoded birth/heartbeat maps by their bytes: most do not change between refreshes
        self._views: dict[str, tuple[tuple, dict]] = {}  # each gate's last view and what it was made from
        self.ready = threading.Event()

    # ---- readers (any thread) ----

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def wait_newer(self, version: int, timeout: float) -> Snapshot | None:
        with self._changed:
            self._changed.wait_for(lambda: self._snapshot.version > version, timeout)
            return self._snapshot if self._snapshot.version > version else None

    # ---- the feed's thread ----

    def run(self, stop: threading.Event, database: Path) -> None:
        self._store = ConsoleStore(database, self.config.synchronous)
        try:
            last_full, changed, spacing = 0.0, True, MIN_REFRESH_S
            while not stop.is_set():
                changed = self._store.changed_elsewhere() or changed
                since = time.monotonic() - last_full
                if (changed and since >= spacing) or since >= REFRESH_S or not self.ready.is_set():
                    last_full, changed = time.monotonic(), False
                    self._refresh_guarded()
                    spacing = min(REFRESH_S, max(MIN_REFRESH_S, (time.monotonic() - last_full) / MAX_SHARE))
                    self.ready.set()
                stop.wait(POLL_S)
        finally:
            self._store.close()

    def _refresh_guarded(self) -> None:
        """Last guard of the feed's thread: a failed refresh (database locked past busy_timeout, disk error)
        is logged and retried at the next tick; the dashboard keeps the last snapshot meanwhile."""
        try:
            self._refresh()
        except sqlite3.Error as error:
            log.error("console feed could not read the hub database: %s", error)

    def _refresh(self) -> None:
        store = self._store
        assert store is not None
        now_ms = int(self._clock() * 1000)
        day = queries.today(now_ms, self.config.timezone)
        with store.read_snapshot():  # one consistent read of events, gates and heads, never holding up the hub's writer
            if day != self._day:
                self._start_day(store, day)
            self._read_new_events(store)
            gates = self._gate_views(store, now_ms)
            quotas = [slot_row(q, store.quota_ledger(q.day, q.slot_start, 0), self.config.quota_skew_s * 1000) for q in store.quotas(day, day)]
            acks = store.alert_acks()
            depth = queries.outbox_depth(store.db)
        broker_up = self._broker_up()
        stats = self._hub_stats()
        alerts = self._book.update(gates, broker_up, now_ms, acks, int(stats.get("session_takeovers", 0)))
        data = {
            "site": self.config.site, "day": day, "broker_up": broker_up, "gates": gates, "quotas": quotas,
            "alerts": [alert.as_dict() for alert in alerts], "totals": _totals(gates),
            "hub": {**stats, "outbox_depth": depth, "store_bytes": _store_bytes(self.config.database)},
        }
        if data != self._snapshot.data:
            with self._changed:
                self._snapshot = Snapshot(self._snapshot.version + 1, now_ms, data)
                self._changed.notify_all()

    def _start_day(self, store: ConsoleStore, day: str) -> None:
        """A new local day (or the first refresh): recount today's events from the store."""
        self._day, self._tallies = day, {}
        start, _ = queries.day_bounds_ms(day, self.config.timezone)
        self._cursor = queries.progress(store.db)
        for event in queries.events_since(store.db, start):
            if event.seq <= self._cursor.get((event.gate, event.incarnation), 0):
                self._tallies.setdefault(event.gate, Tally()).add(event)

    def _read_new_events(self, store: ConsoleStore) -> None:
        start, end = queries.day_bounds_ms(self._day, self.config.timezone)
        self._progress = queries.progress(store.db)
        for stream, contiguous in self._progress.items():
            after = self._cursor.get(stream, 0)
            if contiguous <= after:
                continue
            tally = self._tallies.setdefault(stream[0], Tally())
            for event in queries.events_between(store.db, stream, after, contiguous):
                if start <= event.at_ms < end:
                    tally.add(event)
            self._cursor[stream] = contiguous

    def _gate_views(self, store: ConsoleStore, now_ms: int) -> list[dict]:
        """One dict per gate; a gate whose row, tally and status are as before keeps its dict (and its alerts)."""
        heads = queries.stream_heads(store.db)
        trust_head = latest_trust_version(store.db)
        broker_up = self._broker_up()
        stale_ms = 3 * self.config.heartbeat_interval_s * 1000
        blobs: dict[bytes, dict] = {}
        views, made = [], {}
        for row, health in queries.gate_healths(store.db, self._progress, self._blobs, blobs):
            state = status(health, now_ms, stale_ms) if broker_up else "unknown"
            tally = self._tallies.get(health.gate) or Tally()
            per_minute = tally.per_minute(now_ms)
            key = (row, health.acked_seq, tally.version, per_minute, heads, trust_head, state,
                   (now_ms - health.last_seen_ms) // 1000 if state == "stale" else 0)
            held = self._views.get(health.gate)
            view = held[1] if held is not None and held[0] == key else self._gate_view(health, state, tally, per_minute, heads, trust_head, now_ms)
            made[health.gate] = (key, view)
            views.append(view)
        self._blobs, self._views = blobs, made
        return views

    def _gate_view(self, health, state: str, tally: Tally, per_minute: int, heads: tuple[int, int], trust_head: int | None, now_ms: int) -> dict:
        fields = queries.health_of(health)
        cause = _cause(state, health, now_ms)
        self._note_transition(health.gate, state, cause)
        self._note_reset(health)
        relay = fields.get("relay")
        rev_head, used_head = heads
        return {
            "gate": health.gate, "status": state, "cause": cause, "last_seen_ms": health.last_seen_ms,
            "online_since_ms": health.born_ms if health.online else None, "offline_since_ms": health.died_ms if not health.online else None,
            "last_scan_ms": tally.last_scan_ms, "admissions_today": tally.admissions, "persons_today": tally.persons,
            "refusals_today": tally.refusals, "exits_today": tally.exits, "flagged_today": tally.flagged,
            "per_minute": per_minute, "decisions": dict(tally.reasons),
            "rev_lag": rev_head - fields["rev_seq"] if isinstance(fields["rev_seq"], int) else None,
            "used_lag": used_head - fields["used_seq"] if isinstance(fields["used_seq"], int) else None,
            "trust_head": trust_head,  # the hub's newest trust list; a gate below it may still trust a withdrawn issuer key
            "emergency": isinstance(relay, str) and relay.startswith("emergency"),
            "state_reset": bool(health.resets), "acked_seq": health.acked_seq, **fields,
            "settings_mismatch": [item.as_dict() for item in stored_disagreements(health.heartbeat or health.birth or {}, self._hub_settings)],
            "session_takeovers": (health.heartbeat or {}).get("session_takeovers"),
        }

    def _note_transition(self, gate: str, state: str, cause: str) -> None:
        before = self._last_status.get(gate)
        if before == state:
            return
        self._last_status[gate] = state
        if before is None and state == "online":
            return  # the hub (re)started and found it up: not a transition
        level = logging.INFO if state == "online" else logging.ERROR if state == "offline" else logging.WARNING
        log.log(level, "gate=%s status=%s was=%s cause=%s", gate, state, before or "-", cause)

    def _note_reset(self, health) -> None:
        """Log a reset the hub recorded (``GateHealth.resets``: it told the gate its state went backwards) once."""
        seen = self._resets.setdefault(health.gate, health.resets)
        if health.resets != seen:
            self._resets[health.gate] = health.resets
            incarnation = health.incarnation.hex() if isinstance(health.incarnation, bytes) else "-"
            log.warning("gate=%s state_reset resets=%s reset_ms=%s incarnation=%s", health.gate, health.resets, health.reset_ms, incarnation)


def _cause(state: str, health, now_ms: int) -> str:
    if state == "unknown":
        return "hub cannot reach the broker"
    if state == "offline":
        return "its connection ended: a clean stop, or the broker saw it drop" if health.died_ms else "never connected"
    if state == "stale":
        return f"silent for {(now_ms - health.last_seen_ms) // 1000} s while connected"
    return "birth" if health.born_ms else "heartbeat"


def _totals(gates: list[dict]) -> dict:
    keys = ("admissions_today", "persons_today", "refusals_today", "exits_today", "flagged_today", "per_minute")
    totals = {key: sum(gate[key] for gate in gates) for key in keys}
    totals.update(Counter(gate["status"] for gate in gates))
    return {"gates": len(gates), **totals}


def _store_bytes(database: Path) -> int:
    return sum(path.stat().st_size for path in (database, Path(f"{database}-wal")) if path.exists())
