"""One scan in, one durably recorded decision out: the engine wired to gate state.

The engine decides; this records. An admission (usage, quota, event) is
committed before ``scan`` returns, so the turnstile never opens on a decision
a power cut could forget. When nobody passes, ``passage`` rolls the
admission back: the entry returns to the ticket, the place to the quota, and
both facts stay in the outbox as events.

Where a turnstile confirms passages (``passage_directions``), every admission
is also remembered as *open* until the turnstile settles it, and marked
*pulsed* (durably) just before the relay is commanded. After a crash,
``recover_open_admissions`` rolls back what never opened (and, where a sensor
confirms passages, what was never confirmed), so a kill between commit and
pulse never burns a ticket. An exit re-arms a re-entry ticket only through
the same path: when the exit passage is confirmed, never at the scan.

Failures never open anything: a failed commit is a ``storage_error`` deny with
a health alarm, and any other exception while deciding is an
``internal_error`` deny (the last guard), logged once with a hash of the
input, never its text.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import traceback
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

from protocol.gate_messages import EventKind
from protocol.trust import TrustStore

from .cache.revocation_files import RevocationStoreError
from .cache.records import OpenAdmission, PendingEvent, UsageCount
from .cache.state import GateStore
from .clock import JUMP_THRESHOLD_SECONDS, ClockReading, GateClock
from .decision import Decision, Reason
from .engine import decide, zone_of
from .health import Alarm, GateHealth
from .hublink import HubLinkState
from .parts import open_gate_parts
from .realname.policy import PresentedHolder
from .rules import Direction, GateRules, Usage

log = logging.getLogger(__name__)

STORAGE_FAULTS = (sqlite3.Error, OSError, RevocationStoreError)


class RevocationLookup(Protocol):
    def is_revoked(self, ticket_id: bytes) -> bool: ...


@dataclass(frozen=True)
class Admission:
    """A granted passage (entry, or the exit of a re-entry ticket) awaiting the turnstile's word."""

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
    """``event`` is None only when nothing could be recorded (a storage_error deny)."""

    decision: Decision
    event: PendingEvent | None
    admission: Admission | None
    mark: UsageCount | None


class StoreView:
    """The StateView the engine reads (gate/rules.py), over the gate's parts at one clock reading."""

    def __init__(self, store: GateStore, revocations: RevocationLookup, hub: HubLinkState, now: int, trusted: bool) -> None:
        self._store, self._revocations, self._hub = store, revocations, hub
        self._now_ms, self._trusted = now * 1000, trusted

    def is_revoked(self, ticket_id: bytes) -> bool:
        return self._revocations.is_revoked(ticket_id)

    def usage(self, ticket_id: bytes, zone: str, day: date) -> Usage:
        return self._store.usage(ticket_id, zone, day)

    def quota_remaining(self, day: date, minute: int) -> int | None:
        return self._store.quota_remaining(day, minute, self._now_ms)

    def clock_trusted(self) -> bool:
        return self._trusted

    def hub_online(self) -> bool:
        return self._hub.online


def input_hash(text: str) -> str:
    """A short hash naming a scanned text in logs without revealing it."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def fault_location(exc: BaseException) -> str:
    """The frames an exception passed through, as ``file:line`` from outermost to innermost (no values)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return " > ".join(f"{Path(frame.filename).name}:{frame.lineno}" for frame in frames[-6:]) or "?"


class Validator:
    """Thread-safe: scans and passage reports are serialised by one lock.

    ``passage_directions``: the directions a turnstile opens and reports
    passages for (empty for a handheld validator, whose admissions stand at
    the scan: staff see the visitor). ``hub`` is only read (the offline
    policy): the hub sync sets it. Events reach the hub sync through the
    store's recorded listeners, never through the validator. The parts are
    private: whoever needs one is handed it by whoever built it (gate/parts.py).
    """

    def __init__(self, rules: GateRules, trust: TrustStore, store: GateStore, revocations: RevocationLookup, clock: GateClock, hub: HubLinkState,
                 health: GateHealth | None = None, passage_directions: frozenset[str] = frozenset()) -> None:
        self.rules, self.trust = rules, trust
        self._store, self._revocations, self._clock, self._hub = store, revocations, clock, hub
        self.health = health or GateHealth()
        self._passage_directions = passage_directions
        self._lock = threading.Lock()

    def replace_trust(self, trust: TrustStore) -> None:
        """Swap the issuer trust store whole (a new trust list): a scan being decided finishes with the old one."""
        with self._lock:
            self.trust = trust

    def close(self) -> None:
        """Close the store and revocation set: for a validator that owns them (``open_validator``); a composition root closes its parts itself."""
        self._store.close()
        close = getattr(self._revocations, "close", None)
        if close:
            close()

    def scan(self, text: str, direction: Direction = Direction.ENTRY, holder: PresentedHolder | None = None) -> ScanResult:
        """Decide and record one scan. Never raises for a fault of input, storage or code: those are denials."""
        with self._lock:
            reading = self._clock.read()
            try:
                decision = decide(text, reading.now, self.rules, self.trust, StoreView(self._store, self._revocations, self._hub, reading.lease_now, reading.trusted), direction, holder)
            except STORAGE_FAULTS as exc:  # a read failed: deny, and record that if the state still takes a commit
                decision = self._storage_failed(text, exc).decision
            except Exception as exc:  # the last guard: a bug must deny, be counted and reported, never stop the gate
                decision = self._internal_error(text, exc)
            return self._record_guarded(text, decision, reading, direction)

    def refuse(self, text: str, direction: Direction, reason: Reason, detail: str) -> ScanResult:
        """Record a deny decided outside the engine (e.g. the turnstile is down: nobody is admitted)."""
        with self._lock:
            return self._record_guarded(text, Decision.deny(reason, detail), self._clock.read(), direction)

    def _record_guarded(self, text: str, decision: Decision, reading: ClockReading, direction: Direction) -> ScanResult:
        try:
            result = self._record(decision, reading, direction, text)
        except STORAGE_FAULTS as exc:
            return self._storage_failed(text, exc)
        except Exception as exc:  # the last guard around recording: deny, count, report; nothing was committed
            return ScanResult(self._internal_error(text, exc), None, None, None)
        if decision.reason is not Reason.STORAGE_ERROR:
            self.health.clear_alarm(Alarm.STORAGE)  # a scan was read and committed: the state works again
        return result

    def _storage_failed(self, text: str, exc: BaseException) -> ScanResult:
        """Nothing was committed (the transaction rolled back): deny, raise the alarm, go on."""
        self.health.count("storage_errors")
        self.health.raise_alarm(Alarm.STORAGE, f"{type(exc).__name__}: {exc}")
        log.error("scan input=%s refused: storage_error %s: %s", input_hash(text), type(exc).__name__, exc)
        return ScanResult(Decision.deny(Reason.STORAGE_ERROR, f"state not writable: {exc}"), None, None, None)

    def _internal_error(self, text: str, exc: BaseException) -> Decision:
        """One log line with the exception type, where it was raised and the input's hash.

        Not the exception's message nor a traceback with locals: either may
        carry bytes of the scanned text (cbor2's AssertionError does).
        """
        where = fault_location(exc)
        self.health.count("internal_errors")
        self.health.raise_alarm(Alarm.INTERNAL_ERROR, f"{type(exc).__name__} at {where} on input {input_hash(text)}")
        log.error("scan input=%s refused: internal_error %s at %s", input_hash(text), type(exc).__name__, where)
        return Decision.deny(Reason.INTERNAL_ERROR, f"{type(exc).__name__} at {where} (input {input_hash(text)})")

    def _record(self, decision: Decision, reading: ClockReading, direction: Direction, text: str) -> ScanResult:
        now = reading.now
        local = datetime.fromtimestamp(now, self.rules.timezone)
        zone, day, minute = zone_of(self.rules), local.date().isoformat(), local.hour * 60 + local.minute
        claims = decision.ticket
        hub_online = self._hub.online
        data = {
            "gate": self.rules.gate_id, "decision": "grant" if decision.granted else "deny", "reason": decision.reason.value,
            "detail": decision.detail, "persons": decision.persons, "zone": zone, "day": day, "direction": direction.value,
            "flagged": decision.flagged, "clock_trusted": reading.trusted, "hub_online": hub_online,
        }
        kind = _event_kind(decision)
        admission: Admission | None = None
        mark: UsageCount | None = None
        awaited: Direction | None = None
        with self._store.transaction(durable=kind is not EventKind.DENY) as db:  # a deny opened nothing: no fsync of its own
            if claims is not None and kind is not EventKind.DENY:
                data["ticket"] = text  # the hub verifies the ticket itself before it relays any mark of it
                key = (claims.ticket_id, zone, day, self.rules.gate_id)
                if kind is EventKind.ADMISSION:
                    mark = self._store.add_usage(db, key, 1, 0, now, claims.expires)
                    slot = self._store.use_quota(db, local.date(), minute, decision.persons)
                    data.update(_sync_fields(mark, claims.expires, slot, decision.persons))
                    awaited = Direction.ENTRY
                elif claims.reentry and self._store.usage(claims.ticket_id, zone, local.date()).consumed(True) > 0:
                    awaited, mark = self._exit_rearm(db, key, claims.expires, now, data)
            event = self._store.append_event(db, kind, reading.now_ms, claims.ticket_id if claims else None, data)
            if awaited is not None and claims is not None:
                admission = Admission(event.seq, claims.ticket_id, zone, day, minute, decision.persons, awaited, claims.expires)
                if awaited.value in self._passage_directions:
                    self._store.open_admission(db, OpenAdmission(event.seq, claims.ticket_id, zone, day, minute, decision.persons, awaited.value, claims.expires, False))
            self._store.raise_high_water(db, int(self._clock.high_water))
        log.info("decision %s %s ticket=%s persons=%d seq=%d%s", data["decision"], decision.reason.value, claims.ticket_id_hex if claims else "-", decision.persons, event.seq,
                 f" FLAGGED (hub online: {hub_online}, clock trusted: {reading.trusted})" if decision.flagged else "")
        return ScanResult(decision, event, admission, mark)

    def _exit_rearm(self, db: sqlite3.Connection, key: tuple[bytes, str, str, str], expires: int, now: int, data: dict) -> tuple[Direction | None, UsageCount | None]:
        """An exit of a ticket inside: re-arm it now (handheld), at the confirmed passage (exit relay), or not at all.

        A turnstile without an exit relay cannot confirm anybody left, so the
        ticket stays used: a second person cannot enter on the same code.
        """
        if not self._passage_directions:
            mark = self._store.add_usage(db, key, 0, 1, now, expires)
            data.update(_sync_fields(mark, expires, None, 0))
            return None, mark
        if Direction.EXIT.value in self._passage_directions:
            return Direction.EXIT, None
        data["detail"] = "no exit relay to confirm the exit: ticket not re-armed"
        return None, None

    def begin_passage(self, admission: Admission) -> bool:
        """Durably mark the admission pulsed, just before the relay opens. False: not recorded, do not open."""
        if admission.direction.value not in self._passage_directions:
            return True
        try:
            self._store.mark_pulsed(admission.event_seq)
        except STORAGE_FAULTS as exc:
            self.health.count("storage_errors")
            self.health.raise_alarm(Alarm.STORAGE, f"{type(exc).__name__}: {exc}")
            log.error("admission seq %d not opened: cannot record the pulse: %s", admission.event_seq, exc)
            return False
        return True

    def passage(self, admission: Admission, passed: int, note: str = "") -> UsageCount | None:
        """Report how many passed; nobody passing undoes the admission. Returns the new usage mark, if any.

        When part of a group passed, the ticket stays used (its entry was
        taken) but the places of those who did not pass go back to the quota.
        An exit re-arms the ticket only here, when somebody did pass.
        """
        with self._lock, self._store.transaction() as db:
            reading = self._clock.read()
            data = {"gate": self.rules.gate_id, "admission_seq": admission.event_seq, "passed": passed, "expected": admission.persons,
                    "zone": admission.zone, "day": admission.day, "direction": admission.direction.value}
            if note:
                data["note"] = note
            key = (admission.ticket_id, admission.zone, admission.day, self.rules.gate_id)
            mark = None
            if admission.direction is Direction.EXIT:
                if passed > 0:
                    mark = self._store.add_usage(db, key, 0, 1, reading.now, admission.expires)
                    data.update(_sync_fields(mark, admission.expires, None, 0))
                self._store.append_event(db, EventKind.PASSAGE, reading.now_ms, admission.ticket_id, data)
            elif passed > 0:
                missing = max(0, admission.persons - passed)
                slot = self._store.use_quota(db, date.fromisoformat(admission.day), admission.minute, -missing) if missing else None
                if slot is not None:
                    data["quota"] = {"day": admission.day, "slot_start": slot, "persons": -missing}
                self._store.append_event(db, EventKind.PASSAGE, reading.now_ms, admission.ticket_id, data)
            else:
                mark = self._roll_back(db, admission, reading, data)
            self._store.settle_admission(db, admission.event_seq)
        return mark

    def _roll_back(self, db: sqlite3.Connection, admission: Admission, reading: ClockReading, data: dict) -> UsageCount:
        """Give the entry back to the ticket and the places back to the quota, as one more event."""
        slot = self._store.use_quota(db, date.fromisoformat(admission.day), admission.minute, -admission.persons)
        mark = self._store.add_usage(db, (admission.ticket_id, admission.zone, admission.day, self.rules.gate_id), -1, 0, reading.now, admission.expires)
        data.update(_sync_fields(mark, admission.expires, slot, -admission.persons))
        self._store.append_event(db, EventKind.ROLLBACK, reading.now_ms, admission.ticket_id, data)
        log.info("rollback ticket=%s: nobody passed (admission seq %d)", admission.ticket_id.hex(), admission.event_seq)
        return mark

    def recover_open_admissions(self, confirms_passage: bool) -> int:
        """Settle admissions a crash left open (call at start, before scanning); returns how many were rolled back."""
        rolled_back = 0
        for row in self._store.open_admissions():
            admission = Admission(row.seq, row.ticket_id, row.zone, row.day, row.minute, row.persons, Direction(row.direction), row.expires)
            rolled_back += not self.settle_interrupted(admission, row.pulsed, confirms_passage, "the last stop")
        return rolled_back

    def settle_interrupted(self, admission: Admission, pulsed: bool, confirms_passage: bool, cause: str) -> bool:
        """Settle an admission whose turnstile run was cut short; True when it stands.

        Never pulsed: the relay never opened, roll back. Pulsed: where a sensor
        confirms passages, none was recorded, roll back; without a sensor the
        pulse is the passage (somebody may have walked through), so it stands.
        """
        stands = pulsed and not confirms_passage
        if stands:
            self.passage(admission, admission.persons, f"interrupted by {cause}: pulsed, no sensor to confirm; stands")
        else:
            self.passage(admission, 0, f"interrupted by {cause}: " + ("no passage confirmed" if pulsed else "relay never opened"))
        log.warning("admission seq %d interrupted by %s (%s): %s", admission.event_seq, cause,
                    "pulsed" if pulsed else "never pulsed", "stands" if stands else "rolled back")
        return stands

    def prune_expired_usage(self, limit: int = 1_000) -> int:
        """Drop a batch of usage rows of long-expired tickets, by the clock's lower bound (never a forged wall time)."""
        with self._lock:
            lower = int(self._clock.high_water)
        return self._store.prune_expired_usage(lower, limit)


def _event_kind(decision: Decision) -> EventKind:
    """An entry granted as valid is an admission, an exit an exit; anything else is reported as a deny."""
    if decision.granted and decision.reason is Reason.VALID:
        return EventKind.ADMISSION
    return EventKind.EXIT if decision.reason is Reason.EXIT else EventKind.DENY


def _sync_fields(mark: UsageCount, expires: int, quota_slot: int | None, persons: int) -> dict:
    """What the hub relays from an event that changed counters: see hub/ingest.py and hub/quota.py."""
    fields: dict = {"usage": {"zone": mark.zone, "day": mark.day, "entries": mark.entries, "exits": mark.exits}, "expires": expires}
    if quota_slot is not None:
        fields["quota"] = {"day": mark.day, "slot_start": quota_slot, "persons": persons}
    return fields


def open_validator(state_dir: Path, rules: GateRules, trust: TrustStore, clock_threshold_seconds: float = JUMP_THRESHOLD_SECONDS, clock: GateClock | None = None,
                   health: GateHealth | None = None, passage_directions: frozenset[str] = frozenset(), hub: HubLinkState | None = None) -> Validator:
    """A validator over its own parts opened from ``state_dir`` (see gate/parts.py), for a gate without a hub link.

    The handheld ``gate validate`` and tests; a gate with a hub link opens
    the parts itself (lungta/gate_run.py) to hand them to the hub sync too.
    """
    health = health or GateHealth()
    parts = open_gate_parts(state_dir, health, clock_threshold_seconds, clock, hub)
    return Validator(rules, trust, parts.store, parts.revocations, parts.clock, parts.hub, health, passage_directions)
