"""Read-only views over the hub's tables for the API: gates, events, tickets, revocations, reports.

Every SQL statement the console runs against the hub's own tables is here
(plus ``live.py``'s incremental event read), so a change of the hub schema
is adapted in one place. Event details (decision, reason, persons, flagged)
are inside the CBOR ``data`` of each event, so filters on them run in
Python over rows SQL has already narrowed by gate, kind and time.
"""

from __future__ import annotations

import csv
import functools
import io
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time as dtime, timedelta
from zoneinfo import ZoneInfo

from protocol.cbor import decode_exactly
from protocol.errors import TicketError
from protocol.ticket import read_ticket
from protocol.topics import REVOCATIONS, USED

from ..sqlite_health import GATE_COLUMNS
from ..store import GateHealth

EVENT_PAGE_MAX = 1000
SCAN_KINDS = ("admission", "deny", "exit")


@dataclass(frozen=True)
class EventRow:
    """One stored gate event as the API shows it."""

    gate: str
    seq: int
    kind: str
    at_ms: int
    received_ms: int
    ticket_id: str | None
    data: dict
    incarnation: bytes = b""  # the gate state whose sequence ``seq`` belongs to (seqs restart with a new incarnation)

    @property
    def reason(self) -> str:
        return str(self.data.get("reason", self.kind))

    @property
    def ticket_type(self) -> str | None:
        """The ticket's type (adult, child...): the event's own field, else read from the ticket text an admission carries."""
        given = self.data.get("ticket_type")
        if isinstance(given, str):
            return given
        text = self.data.get("ticket")
        return ticket_type_of(text) if isinstance(text, str) else None

    def as_dict(self) -> dict:
        return {"gate": self.gate, "seq": self.seq, "kind": self.kind, "at_ms": self.at_ms, "received_ms": self.received_ms,
                "ticket_id": self.ticket_id, "reason": self.reason, "decision": self.data.get("decision"),
                "persons": self.data.get("persons", 0), "flagged": bool(self.data.get("flagged")), "detail": self.data.get("detail", ""),
                "direction": self.data.get("direction"), "ticket_type": self.ticket_type}


@functools.lru_cache(maxsize=4096)
def ticket_type_of(text: str) -> str | None:
    """The type a ticket's claims name, read without verifying: the gate verified it before it admitted,
    and the hub before it relayed the used mark. A text that does not parse has no type (None)."""
    try:
        return read_ticket(text).claims.ticket_type.label
    except (TicketError, ValueError):
        return None


def _event(row: tuple) -> EventRow:
    gate, seq, kind, at_ms, received_ms, ticket_id, data, incarnation = row
    return EventRow(gate, seq, kind, at_ms, received_ms, ticket_id.hex() if ticket_id else None, _map(data), incarnation)


def _map(blob: bytes | None) -> dict:
    value = decode_exactly(blob, "event data") if blob else {}
    return value if isinstance(value, dict) else {}


def _stored_map(blob: bytes | None) -> dict:
    """A gate's stored birth/heartbeat, decoded as the hub does (``SqliteHubStore``): heartbeats carry floats (temperature_c)."""
    value = decode_exactly(blob, "stored map", allow_floats=True) if blob else {}
    return value if isinstance(value, dict) else {}


_EVENT_COLUMNS = "gate, seq, kind, at_ms, received_ms, ticket_id, data, incarnation"
Stream = tuple[str, bytes]  # (gate, incarnation): one gate state's event sequence, as the hub keys gate_progress


def day_bounds_ms(day: str, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local day in Unix ms."""
    start = datetime.combine(datetime.fromisoformat(day).date(), dtime(), zone)
    end = datetime.combine(start.date() + timedelta(days=1), dtime(), zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def today(now_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(now_ms / 1000, zone).date().isoformat()


@dataclass(frozen=True)
class EventFilter:
    gate: str | None = None
    kind: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def events(db: sqlite3.Connection, where: EventFilter, limit: int, before: tuple[int, str, int] | None = None) -> list[EventRow]:
    """Newest first, at most ``limit``; ``before`` = (at_ms, gate, seq) of the last row of the previous page."""
    clauses, params = ["1"], []
    for column, value in (("gate = ?", where.gate), ("kind = ?", where.kind), ("at_ms >= ?", where.since_ms), ("at_ms < ?", where.until_ms)):
        if value is not None:
            clauses.append(column)
            params.append(value)
    if before is not None:
        clauses.append("(at_ms, gate, seq) < (?, ?, ?)")
        params.extend(before)
    sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY at_ms DESC, gate DESC, seq DESC"
    out: list[EventRow] = []
    for row in db.execute(sql, params):
        event = _event(row)
        if where.reason is None or event.reason == where.reason:
            out.append(event)
            if len(out) >= limit:
                break
    return out


def ticket_events(db: sqlite3.Connection, ticket_id: bytes) -> list[EventRow]:
    """Every event of one ticket across gates, oldest first: was it used, where, when, why refused."""
    rows = db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE ticket_id = ? ORDER BY at_ms, gate, seq", (ticket_id,))
    return [_event(row) for row in rows]


def ticket_revocation(db: sqlite3.Connection, ticket_id: bytes) -> dict:
    row = db.execute("SELECT expires, reason, seq, recorded_ms FROM revocations WHERE ticket_id = ?", (ticket_id,)).fetchone()
    history = [{"action": action, "reason": reason, "actor": actor, "at_ms": at} for action, reason, actor, at in
               db.execute("SELECT action, reason, actor, at_ms FROM console_revocation_log WHERE ticket_id = ? ORDER BY id", (ticket_id,))]
    current = None if row is None else {"expires": row[0], "reason": row[1], "seq": row[2], "recorded_ms": row[3]}
    return {"revoked": current is not None, "current": current, "history": history}


def revocation_log(db: sqlite3.Connection, limit: int, before_id: int | None) -> list[dict]:
    """Revocations and un-revocations, newest first, with who, when and why (from the console's log)."""
    sql = "SELECT id, ticket_id, action, reason, actor, at_ms, audit_seq FROM console_revocation_log"
    params: list = []
    if before_id is not None:
        sql += " WHERE id < ?"
        params.append(before_id)
    rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
    return [{"id": id_, "ticket_id": ticket.hex(), "action": action, "reason": reason, "actor": actor, "at_ms": at, "audit_seq": seq}
            for id_, ticket, action, reason, actor, at, seq in rows]


def stream_heads(db: sqlite3.Connection) -> tuple[int, int]:
    """The last seq of the revocations and used streams: what a gate's lag is measured against."""
    heads = dict(db.execute("SELECT stream, last_seq FROM stream_seq WHERE stream IN (?, ?)", (REVOCATIONS, USED)).fetchall())
    return heads.get(REVOCATIONS, 0), heads.get(USED, 0)


def outbox_depth(db: sqlite3.Connection) -> int:
    return db.execute("SELECT count(*) FROM outbox WHERE published = 0").fetchone()[0]


def progress(db: sqlite3.Connection) -> dict[Stream, int]:
    """The contiguous seq the hub has stored of each (gate, incarnation)."""
    return {(gate, incarnation): seq for gate, incarnation, seq in db.execute("SELECT gate, incarnation, contiguous_seq FROM gate_progress")}


def events_between(db: sqlite3.Connection, stream: Stream, after_seq: int, upto_seq: int) -> Iterator[EventRow]:
    """One (gate, incarnation)'s events with after_seq < seq <= upto_seq; seqs of another incarnation of the gate are another sequence."""
    gate, incarnation = stream
    rows = db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE gate = ? AND incarnation = ? AND seq > ? AND seq <= ? ORDER BY seq", (gate, incarnation, after_seq, upto_seq))
    return (_event(row) for row in rows)


def events_since(db: sqlite3.Connection, since_ms: int) -> Iterator[EventRow]:
    return (_event(row) for row in db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE at_ms >= ?", (since_ms,)))


def gate_healths(db: sqlite3.Connection, acked: dict[Stream, int], cache: dict[bytes, dict], seen: dict[bytes, dict]) -> list[tuple[tuple, GateHealth]]:
    """Every gate's (raw row, health), as ``SqliteHubStore.gates`` gives it, decoding only the CBOR maps not in ``cache``.

    The live feed reads this several times a second for hundreds of gates whose
    birth never changes; ``seen`` collects this read's maps for the next call;
    the raw row tells the caller whether anything of the gate changed.
    """
    def decoded(blob: bytes | None) -> dict:
        if not blob:
            return {}
        value = cache.get(blob) or seen.get(blob) or _stored_map(blob)
        seen[blob] = value
        return value

    rows = db.execute(f"SELECT {GATE_COLUMNS} FROM gates ORDER BY gate")
    return [(row, GateHealth(gate, bool(online), bdseq, last_seen, born, died, decoded(birth), decoded(heartbeat),
                             acked.get((gate, incarnation), 0) if incarnation else 0, incarnation, resets, reset_ms, refused))
            for row in rows for gate, online, bdseq, last_seen, born, died, birth, heartbeat, incarnation, resets, reset_ms, refused in (row,)]


def health_of(health: GateHealth) -> dict:
    """The device and sync fields of a gate's latest heartbeat (birth before the first heartbeat)."""
    beat = health.heartbeat or {}
    return {
        "version": beat.get("version", health.birth.get("version")),
        "backlog": beat.get("backlog"), "rev_seq": beat.get("rev_seq"), "used_seq": beat.get("used_seq"),
        "clock_offset_ms": beat.get("clock_offset_ms"), "clock_trusted": beat.get("clock_trusted"),
        "scanner": beat.get("scanner"), "relay": beat.get("relay"),
        "disk_free_mb": beat.get("disk_free_mb"), "temperature_c": beat.get("temperature_c"),
        "trust_version": beat.get("trust_version"),  # the installed trust list (hub/trustlist.py); None: the gate's own trust file
        "incarnation": health.incarnation.hex() if isinstance(health.incarnation, bytes) else None,
        "resets": health.resets, "reset_ms": health.reset_ms, "refused": health.refused,
    }


# ---- reports ----

REPORTS = ("admissions_by_hour", "refusals_by_reason", "flagged", "daily_totals")


def report(db: sqlite3.Connection, name: str, day: str, zone: ZoneInfo) -> list[dict]:
    """Rows of one report over a local day; the same rows serve JSON and CSV."""
    start, end = day_bounds_ms(day, zone)
    rows = [_event(row) for row in db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE at_ms >= ? AND at_ms < ? AND kind IN (?, ?, ?)", (start, end, *SCAN_KINDS))]
    if name == "admissions_by_hour":
        admitted: Counter[tuple[str, str, str]] = Counter()
        for event in rows:
            if event.kind == "admission":
                hour = datetime.fromtimestamp(event.at_ms / 1000, zone).strftime("%H:00")
                admitted[hour, event.gate, event.ticket_type or "unknown"] += int(event.data.get("persons", 1) or 1)
        return [{"hour": h, "gate": g, "ticket_type": t, "persons": n} for (h, g, t), n in sorted(admitted.items())]
    if name == "refusals_by_reason":
        refused = Counter((event.gate, event.reason) for event in rows if event.kind == "deny")
        return [{"gate": g, "reason": r, "refusals": n} for (g, r), n in sorted(refused.items())]
    if name == "flagged":
        return [{"at_ms": e.at_ms, "gate": e.gate, "ticket_id": e.ticket_id, "persons": e.data.get("persons", 0), "clock_trusted": e.data.get("clock_trusted"),
                 "hub_online": e.data.get("hub_online")} for e in sorted(rows, key=lambda e: e.at_ms) if e.data.get("flagged")]
    totals: dict[str, Counter] = {}
    for event in rows:
        tally = totals.setdefault(event.gate, Counter())
        tally[event.kind] += 1
        if event.kind == "admission":
            tally["persons"] += int(event.data.get("persons", 1) or 1)
    return [{"date": day, "gate": gate, "admissions": t["admission"], "persons": t["persons"], "refusals": t["deny"], "exits": t["exit"]} for gate, t in sorted(totals.items())]


REPORT_COLUMNS = {
    "admissions_by_hour": ("hour", "gate", "ticket_type", "persons"),
    "refusals_by_reason": ("gate", "reason", "refusals"),
    "flagged": ("at_ms", "gate", "ticket_id", "persons", "clock_trusted", "hub_online"),
    "daily_totals": ("date", "gate", "admissions", "persons", "refusals", "exits"),
}


def as_csv(name: str, rows: list[dict]) -> str:
    """CSV with a header even when empty (a spreadsheet opens it and shows the columns)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS[name], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
