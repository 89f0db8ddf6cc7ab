"""One scan in, one durably recorded decision out: the engine wired to gate state.

The engine decides; this records. An admission (usage, quota, event) is
committed before ``scan`` returns, so the turnstile never opens on a decision
a power cut could forget. When nobody passes, ``passage`` rolls the
admission back: the entry returns to the ticket, the place to the quota, and
both facts stay in the outbox as events.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

from protocol.trust import TrustStore

from .cache.revocations import RevocationSet
from .cache.state import GateStore, OutboxEvent, UsageMark
from .clock import GateClock
from .decision import Decision, Reason
from .engine import decide, zone_of
from .realname.policy import PresentedHolder
from .rules import Direction, GateRules, Usage

log = logging.getLogger(__name__)


class RevocationLookup(Protocol):
    def is_revoked(self, ticket_id: bytes) -> bool: ...


@dataclass(frozen=True)
class Admission:
    """A granted entry awaiting the passage sensor's word."""

    event_seq: int
    ticket_id: bytes
    zone: str
    day: str
    minute: int
    persons: int
    direction: Direction
    expires: int


@dataclass(frozen=True)
class ScanResult:
    decision: Decision
    event: OutboxEvent
    admission: Admission | None
    mark: UsageMark | None


class _View:
    """The StateView the engine reads, over the store at one clock reading."""

    def __init__(self, validator: "Validator", now: int, trusted: bool) -> None:
        self._v, self._now_ms, self._trusted = validator, now * 1000, trusted

    def is_revoked(self, ticket_id: bytes) -> bool:
        return self._v.revocations.is_revoked(ticket_id)

    def usage(self, ticket_id: bytes, zone: str, day: date) -> Usage:
        return self._v.store.usage(ticket_id, zone, day)

    def quota_remaining(self, day: date, minute: int) -> int | None:
        return self._v.store.quota_remaining(day, minute, self._now_ms)

    def clock_trusted(self) -> bool:
        return self._trusted

    def hub_online(self) -> bool:
        return self._v.hub_online


class Validator:
    """Thread-safe: scans and passage reports are serialised by one lock."""

    def __init__(self, rules: GateRules, trust: TrustStore, store: GateStore, revocations: RevocationLookup, clock: GateClock) -> None:
        self.rules, self.trust, self.store, self.revocations, self.clock = rules, trust, store, revocations, clock
        self.hub_online = False
        self.on_recorded: list[Callable[[], None]] = []  # called after each durable event, e.g. to wake the hub upload
        self._lease_clock = 0  # the latest gate time seen: quota leases expire by it, and it never goes back
        self._lock = threading.Lock()

    def close(self) -> None:
        self.store.close()
        close = getattr(self.revocations, "close", None)
        if close:
            close()

    def scan(self, text: str, direction: Direction = Direction.ENTRY, holder: PresentedHolder | None = None) -> ScanResult:
        with self._lock:
            reading = self.clock.read()
            self._lease_clock = max(self._lease_clock, reading.now)
            decision = decide(text, reading.now, self.rules, self.trust, _View(self, self._lease_clock, reading.trusted), direction, holder)
            return self._record(decision, reading.now, reading.trusted, direction)

    def _record(self, decision: Decision, now: int, clock_trusted: bool, direction: Direction) -> ScanResult:
        local = datetime.fromtimestamp(now, self.rules.timezone)
        zone, day, minute = zone_of(self.rules), local.date().isoformat(), local.hour * 60 + local.minute
        claims = decision.ticket
        data = {
            "gate": self.rules.gate_id, "decision": "grant" if decision.granted else "deny", "reason": decision.reason.value,
            "detail": decision.detail, "persons": decision.persons, "zone": zone, "day": day, "direction": direction.value,
            "flagged": decision.flagged, "clock_trusted": clock_trusted, "hub_online": self.hub_online,
        }
        kind = "admission" if decision.granted and decision.reason is Reason.VALID else "exit" if decision.reason is Reason.EXIT else "deny"
        admission = mark = None
        with self.store.transaction() as db:
            key = (claims.ticket_id, zone, day, self.rules.gate_id) if claims else None
            if claims and kind == "admission":
                mark = self.store.add_usage(db, key, 1, 0, now)
                slot = self.store.use_quota(db, local.date(), minute, decision.persons)
                data.update(_sync_fields(mark, claims.expires, slot, decision.persons))
            elif claims and kind == "exit" and claims.reentry and self.store.usage(claims.ticket_id, zone, local.date()).consumed(True) > 0:
                mark = self.store.add_usage(db, key, 0, 1, now)
                data.update(_sync_fields(mark, claims.expires, None, 0))
            event = self.store.append_event(db, kind, now * 1000, claims.ticket_id if claims else None, data)
            if mark is not None and kind == "admission":
                admission = Admission(event.seq, claims.ticket_id, zone, day, minute, decision.persons, direction, claims.expires)
            self.store.raise_high_water(db, int(self.clock.high_water))
        log.info("decision %s %s ticket=%s persons=%d seq=%d%s", data["decision"], decision.reason.value, claims.ticket_id_hex if claims else "-", decision.persons, event.seq,
                 f" FLAGGED (hub online: {self.hub_online}, clock trusted: {clock_trusted})" if decision.flagged else "")
        self._recorded()
        return ScanResult(decision, event, admission, mark)

    def _recorded(self) -> None:
        for listener in self.on_recorded:
            listener()

    def passage(self, admission: Admission, passed: int) -> UsageMark | None:
        """Report how many passed; nobody passing undoes the admission. Returns the new usage mark on rollback.

        When part of a group passed, the ticket stays used (its entry was
        taken) but the places of those who did not pass go back to the quota.
        """
        with self._lock, self.store.transaction() as db:
            now = self.clock.read().now
            data = {"gate": self.rules.gate_id, "admission_seq": admission.event_seq, "passed": passed, "expected": admission.persons, "zone": admission.zone, "day": admission.day}
            if passed > 0:
                missing = max(0, admission.persons - passed)
                slot = self.store.use_quota(db, date.fromisoformat(admission.day), admission.minute, -missing) if missing else None
                if slot is not None:
                    data["quota"] = {"day": admission.day, "slot_start": slot, "persons": -missing}
                self.store.append_event(db, "passage", now * 1000, admission.ticket_id, data)
                mark = None
            else:
                mark = self._roll_back(db, admission, now, data)
        self._recorded()
        return mark

    def _roll_back(self, db: sqlite3.Connection, admission: Admission, now: int, data: dict) -> UsageMark:
        """Give the entry back to the ticket and the places back to the quota, as one more event."""
        slot = self.store.use_quota(db, date.fromisoformat(admission.day), admission.minute, -admission.persons)
        mark = self.store.add_usage(db, (admission.ticket_id, admission.zone, admission.day, self.rules.gate_id), -1, 0, now)
        data.update(_sync_fields(mark, admission.expires, slot, -admission.persons))
        self.store.append_event(db, "rollback", now * 1000, admission.ticket_id, data)
        log.info("rollback ticket=%s: nobody passed (admission seq %d)", admission.ticket_id.hex(), admission.event_seq)
        return mark

    def sync_clock(self, hub_time: float) -> None:
        """Take hub time from a verified, live hub message as the reference (see GateClock)."""
        with self._lock:
            self.clock.sync_to_hub(hub_time)
            self.store.set_meta("clock_high_water", int(self.clock.high_water))

    def clock_status(self) -> tuple[bool, float | None, int]:
        """(trusted, offset of hub time to the wall clock in seconds if known, lease clock in Unix ms).

        The lease clock is the one quota leases expire by: the latest gate time
        seen, so a clock stepped back (or re-anchored to hub time) can never
        make an expired lease live again. Heartbeats report it as their ``at``.
        """
        with self._lock:
            reading = self.clock.read()
            self._lease_clock = max(self._lease_clock, reading.now)
            return reading.trusted, reading.offset_to_hub, self._lease_clock * 1000


def _sync_fields(mark: UsageMark, expires: int, quota_slot: int | None, persons: int) -> dict:
    """What the hub relays from an event that changed counters: see hub/ingest.py and hub/quota.py."""
    fields: dict = {"usage": {"zone": mark.zone, "day": mark.day, "entries": mark.entries, "exits": mark.exits}, "expires": expires}
    if quota_slot is not None:
        fields["quota"] = {"day": mark.day, "slot_start": quota_slot, "persons": persons}
    return fields


def open_validator(state_dir: Path, rules: GateRules, trust: TrustStore, clock_threshold_seconds: float = 300.0, clock: GateClock | None = None) -> Validator:
    """The gate's validator over the state directory: state.sqlite3 and revocations/."""
    store = GateStore.open(state_dir)
    revocations = RevocationSet.open(state_dir / "revocations")
    if clock is None:
        clock = GateClock(high_water=float(store.get_meta("clock_high_water", 0)), threshold_seconds=clock_threshold_seconds)
    return Validator(rules, trust, store, revocations, clock)
