"""The invariants of issue 11, checked from what the processes left on disk.

Three independent records are compared:
- what each gate *decided*: its log, where the validator writes one
  ``decision ... seq=N`` line right after each commit (the log file survives
  every restart of the gate, so a wiped or rolled-back state cannot hide it);
- what each turnstile *did*: the sim turnstile's ``turnstile.jsonl``, one line per
  admission started on the relay;
- what the hub *stored*: its SQLite database, read directly (events, quotas).
A check returns violations, never raises on a violated invariant, so one run
reports every broken invariant at once.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cbor2

from .site import Site
from testkit.waiting import WaitTimeout, wait_until

SETTLE_SECONDS = 45.0
AWAY_LIMIT_SECONDS = 5.0  # a gate away from the live hub longer than this must apply the offline policy


class Invariant(enum.Enum):
    DECISION_AT_HUB_ONCE = "every decision at the hub exactly once"
    SEQUENCE_WITHOUT_GAPS = "per-incarnation sequence without gaps"
    ADMISSION_PULSED = "no admission recorded without a pulse"
    QUOTA_CAP = "quota cap never exceeded"
    QUOTA_COUNTED = "every admitted person counted"
    OFFLINE_DENY = "offline deny: no single-entry ticket admitted twice"
    DAEMON_RUNNING = "every daemon still running"
    SETTLED = "every event reaches the hub after the heal"


@dataclass(frozen=True)
class Violation:
    invariant: Invariant
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant.value}: {self.where}: {self.detail}"


@dataclass(frozen=True)
class HubEvent:
    gate: str
    incarnation: bytes | None
    seq: int
    kind: str
    ticket: str | None
    data: dict


@dataclass(frozen=True)
class Probe:
    """A ticket already admitted elsewhere, shown to a gate away from the live hub for ``away_seconds``."""

    gate: str
    ticket: str
    away_seconds: float
    granted: bool
    reason: str


def hub_rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows from a SQLite database (the hub's), read-only, while its owner may be writing (WAL)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()


def hub_events(path: Path) -> list[HubEvent]:
    """Every event the hub stored; the incarnation from its own column or the event's data, when there is one."""
    columns = {row[1] for row in hub_rows(path, "PRAGMA table_info(events)")}
    incarnation = "incarnation" if "incarnation" in columns else "NULL"
    rows = hub_rows(path, f"SELECT gate, {incarnation}, seq, kind, ticket_id, data FROM events ORDER BY gate, seq")
    events = []
    for gate, inc, seq, kind, ticket, blob in rows:
        data = cbor2.loads(blob) if blob else {}
        events.append(HubEvent(gate, inc if inc is not None else data.get("incarnation"), seq, kind, ticket.hex() if ticket else None, data))
    return events


def gate_rows(state: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows from a gate's state database (``state`` is its state directory), read-only, while it runs."""
    return hub_rows(state / "state.sqlite3", sql, args)


def gate_backlog(state: Path) -> int:
    """Events in a gate's outbox, i.e. not yet acknowledged by the hub."""
    return gate_rows(state, "SELECT COUNT(*) FROM outbox")[0][0]


def check_running(site: Site) -> list[Violation]:
    down = [process.name for process in site.processes() if not process.running]
    if site.broker.process is None or site.broker.process.poll() is not None:
        down.append("broker")
    return [Violation(Invariant.DAEMON_RUNNING, name, "exited: " + _tail(site, name)) for name in down]


def _tail(site: Site, name: str) -> str:
    process = site.gates.get(name) or (site.hub if name == "hub" else None)
    lines = process.text(since_start=True).strip().splitlines() if process else []
    return lines[-1][-300:] if lines else "(no log)"


def settle(site: Site, timeout: float = SETTLE_SECONDS) -> list[Violation]:
    """Wait until every running gate's outbox is empty: everything it recorded is acknowledged."""
    violations = []
    for gate in site.gates.values():
        if not gate.running:
            continue
        try:
            wait_until(lambda: _backlog_or_none(gate.state) == 0, f"gate {gate.name} outbox empty", timeout)
        except WaitTimeout:
            violations.append(Violation(Invariant.SETTLED, gate.name, f"{_backlog_or_none(gate.state)} event(s) still unacknowledged {timeout:.0f} s after the heal"))
    return violations


def _backlog_or_none(state: Path) -> int | None:
    try:
        return gate_backlog(state)
    except sqlite3.DatabaseError:
        return None


def check_decisions(site: Site, events: list[HubEvent]) -> list[Violation]:
    """Each logged decision (seq, ticket, outcome) is at the hub as often as the gate logged it."""
    violations = []
    for name, gate in site.gates.items():
        logged = Counter((d.seq, d.ticket, d.granted) for d in gate.decisions())
        stored = Counter((e.seq, e.ticket, e.data.get("decision") == "grant") for e in events if e.gate == name and e.kind in ("admission", "deny", "exit"))
        lost = {key: n - stored[key] for key, n in logged.items() if n > stored[key]}
        doubled = {key: stored[key] - n for key, n in logged.items() if stored[key] > n}
        if lost:
            grants = sum(n for (_, _, granted), n in lost.items() if granted)
            violations.append(Violation(Invariant.DECISION_AT_HUB_ONCE, name, f"{sum(lost.values())} decision(s) never reached the hub ({grants} admissions), seqs {_seqs(lost)}"))
        if doubled:
            violations.append(Violation(Invariant.DECISION_AT_HUB_ONCE, name, f"{sum(doubled.values())} decision(s) stored more than once, seqs {_seqs(doubled)}"))
    return violations


def _seqs(keys: Iterable[tuple]) -> str:
    seqs = sorted(key[0] for key in keys)
    return ", ".join(map(str, seqs[:12])) + (" ..." if len(seqs) > 12 else "")


def check_sequences(events: list[HubEvent]) -> list[Violation]:
    """Per (gate, incarnation) the hub holds seqs 1..n, each once."""
    streams: dict[tuple[str, bytes | None], list[int]] = defaultdict(list)
    for event in events:
        streams[(event.gate, event.incarnation)].append(event.seq)
    violations = []
    for (gate, incarnation), seqs in sorted(streams.items(), key=lambda item: (item[0][0], item[0][1] or b"")):
        where = gate + (f" incarnation {incarnation.hex()[:8]}" if incarnation else "")
        repeated = sorted(seq for seq, n in Counter(seqs).items() if n > 1)
        missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
        if repeated:
            violations.append(Violation(Invariant.SEQUENCE_WITHOUT_GAPS, where, f"{len(repeated)} seq(s) stored for two different events: {repeated[:12]}"))
        if missing:
            violations.append(Violation(Invariant.SEQUENCE_WITHOUT_GAPS, where, f"{len(missing)} seq(s) missing below {max(seqs)}: {missing[:12]}"))
    return violations


def check_pulses(site: Site, events: list[HubEvent]) -> list[Violation]:
    """Admissions not rolled back are at most the admissions the turnstile started."""
    violations = []
    for name, gate in site.gates.items():
        rolled_back = {e.data.get("admission_seq") for e in events if e.gate == name and e.kind == "rollback"}
        standing = [e for e in events if e.gate == name and e.kind == "admission" and e.seq not in rolled_back]
        pulses = _turnstile_admits(gate.directory / "turnstile.jsonl")
        if len(standing) > pulses:
            violations.append(Violation(Invariant.ADMISSION_PULSED, name, f"{len(standing) - pulses} admission(s) recorded, never pulsed and never rolled back ({len(standing)} standing, {pulses} pulses)"))
    return violations


def _turnstile_admits(path: Path) -> int:
    if not path.exists():
        return 0
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sum(record["event"] == "admit" for record in records)


def check_quota(site: Site, events: list[HubEvent]) -> list[Violation]:
    """Per capped slot: persons admitted (net of rollbacks) within the cap, by the gates' events and by the hub's
    own count; and every person a gate admitted counted by the hub in a capped slot, under a lease or under none
    (a site of the suite with a quota caps the whole day, so every admission belongs to a capped slot)."""
    caps = {(day, start): cap for day, start, cap in hub_rows(site.hub_db, "SELECT day, slot_start, cap FROM quotas")}
    if not caps:
        return []
    counted: Counter[tuple[str, int]] = Counter()
    for event in events:
        quota = event.data.get("quota")
        if quota:
            counted[(quota["day"], quota["slot_start"])] += quota["persons"]
    violations = [Violation(Invariant.QUOTA_CAP, f"{day} slot {start}", f"{counted[(day, start)]} persons admitted, cap {cap}") for (day, start), cap in caps.items() if counted[(day, start)] > cap]
    for day, start, admitted in hub_rows(site.hub_db, "SELECT day, slot_start, SUM(admitted + unleased) FROM quota_gates GROUP BY day, slot_start"):
        cap = caps.get((day, start))
        if cap is not None and admitted > cap:
            violations.append(Violation(Invariant.QUOTA_CAP, f"{day} slot {start}", f"the hub counts {admitted} persons, cap {cap}"))
    at_hub = dict(hub_rows(site.hub_db, "SELECT gate, SUM(admitted + unleased) FROM quota_gates GROUP BY gate"))
    for gate, admitted in sorted(_admitted_persons(events).items()):
        if admitted > at_hub.get(gate, 0):
            violations.append(Violation(Invariant.QUOTA_COUNTED, gate, f"{admitted - at_hub.get(gate, 0)} admitted person(s) counted in no capped slot by the hub ({admitted} admitted, {at_hub.get(gate, 0)} counted)"))
    return violations


def _admitted_persons(events: list[HubEvent]) -> Counter[str]:
    """Persons each gate admitted, less the places its rollbacks and partial passages gave back to a lease."""
    persons: Counter[str] = Counter()
    for event in events:
        if event.kind == "admission":
            persons[event.gate] += event.data.get("persons", 1)
        elif event.data.get("quota"):
            persons[event.gate] += event.data["quota"]["persons"]
    return persons


def check_probes(probes: list[Probe]) -> list[Violation]:
    """A gate away from the live hub beyond the limit refuses a single-entry ticket used elsewhere (offline_policy deny)."""
    return [Violation(Invariant.OFFLINE_DENY, p.gate, f"ticket {p.ticket[:8]} already admitted elsewhere was granted ({p.reason}) after {p.away_seconds:.1f} s away from the live hub")
            for p in probes if p.granted and p.away_seconds > AWAY_LIMIT_SECONDS]


def check_site(site: Site, probes: list[Probe] = ()) -> list[Violation]:
    """All invariants after a run: running first (before the wait), then settle, then the records."""
    violations = check_running(site) + check_probes(list(probes))
    violations += settle(site)
    events = hub_events(site.hub_db)
    violations += check_decisions(site, events) + check_sequences(events) + check_pulses(site, events) + check_quota(site, events)
    return violations
