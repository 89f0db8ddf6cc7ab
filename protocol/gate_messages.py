"""Gate to hub: events, births, heartbeats, deaths, pings and snapshot requests, decoded into checked types.

Gate messages are plain CBOR, not signed: the broker's per-gate credentials
and ACL authenticate the publisher, and the hub checks that the gate named
inside is the gate of the topic. Everything else a gate says is a claim, so
decoding bounds every field (sizes, counts, string lengths, number ranges)
and keeps only what it understands: known fields become typed values, other
fields of an event's ``data`` or of a report are kept only when they are
small scalars, so the hub never stores or re-encodes a structure a gate
built (a self-referencing CBOR map once crashed it that way). Whether a
claim is *true* (a ticket really verified, a count within the ticket's
claims, a time near hub time) is the hub's check (hub/ingest.py).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .cbor import encode
from .messages import (
    EVENT_ID_LENGTH,
    INCARNATION_LENGTH,
    MAX_COUNT,
    MAX_DETAIL,
    MAX_SEQ,
    MAX_TIME_MS,
    NONCE_LENGTH,
    MalformedMessage,
    decode_payload,
    read_bytes,
    read_day,
    read_int,
    read_list,
    read_map,
    read_opt_int,
    read_text,
)
from .topics import SITE_STREAMS, TopicError, check_name

MAX_EVENTS_PER_MESSAGE = 10_000
MAX_EXTRA_FIELDS = 32
MAX_PERSONS = 10_000
MAX_TICKET_TEXT = 1024
MAX_LEASE_REPORTS = 1000
MAX_SCALAR = 2**53
Scalar = None | bool | int | float | str | bytes


class EventKind(enum.StrEnum):
    ADMISSION = "admission"
    DENY = "deny"
    EXIT = "exit"
    PASSAGE = "passage"
    ROLLBACK = "rollback"
    LOCAL_REVOCATION = "local_revocation"


class ReportKind(enum.StrEnum):
    BIRTH = "birth"
    DEATH = "death"
    HEARTBEAT = "heartbeat"


# ---- events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageCounters:
    """A gate's absolute counters for the event's ticket in a zone on a day, after the event."""

    zone: str
    day: str
    entries: int
    exits: int


@dataclass(frozen=True)
class QuotaCount:
    """Persons an event counted against the gate's lease of a slot (negative on rollback)."""

    day: str
    slot_start: int
    persons: int


@dataclass(frozen=True)
class EventData:
    """What an event says beyond its header; ``extra`` holds the remaining small scalars (decision, reason...).

    ``ticket`` is the scanned ticket text an admission or exit carries, so the
    hub can verify the ticket itself before it relays a used mark for it.
    """

    usage: UsageCounters | None = None
    quota: QuotaCount | None = None
    expires: int | None = None
    persons: int | None = None
    ticket: str | None = None
    extra: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class GateEvent:
    """One thing a gate did, as sent: ``seq`` counts from 1 per (gate, incarnation), never reused."""

    event_id: bytes
    gate: str
    incarnation: bytes
    seq: int
    kind: EventKind
    at_ms: int
    ticket_id: bytes | None = None
    data: EventData = field(default_factory=EventData)


_DATA_KEYS = ("usage", "quota", "expires", "persons", "ticket")


def event_data_map(data: EventData) -> dict:
    """The wire (and storage) form of ``data``: built from checked values only."""
    out: dict = dict(data.extra)
    if data.usage is not None:
        out["usage"] = {"zone": data.usage.zone, "day": data.usage.day, "entries": data.usage.entries, "exits": data.usage.exits}
    if data.quota is not None:
        out["quota"] = {"day": data.quota.day, "slot_start": data.quota.slot_start, "persons": data.quota.persons}
    for key in ("expires", "persons", "ticket"):
        if getattr(data, key) is not None:
            out[key] = getattr(data, key)
    return out


def decode_event_data(value: object) -> EventData:
    """Typed known fields; other keys kept only as bounded scalars, anything else dropped."""
    if type(value) is not dict or len(value) > MAX_EXTRA_FIELDS + len(_DATA_KEYS):
        raise MalformedMessage(f"event data must be a map of at most {MAX_EXTRA_FIELDS + len(_DATA_KEYS)} fields")
    usage, quota = value.get("usage"), value.get("quota")
    ticket = value.get("ticket")
    return EventData(
        usage=None if usage is None else _usage(usage),
        quota=None if quota is None else _quota(quota),
        expires=read_opt_int(value.get("expires"), "expires", 0, MAX_TIME_MS // 1000),
        persons=read_opt_int(value.get("persons"), "persons", 0, MAX_PERSONS),
        ticket=None if ticket is None else read_text(ticket, "ticket", MAX_TICKET_TEXT),
        extra=scalars(value, exclude=_DATA_KEYS),
    )


def _usage(value: object) -> UsageCounters:
    fields = read_map(value, "event usage", {"zone", "day", "entries", "exits"})
    return UsageCounters(read_text(fields.get("zone"), "usage zone"), read_day(fields.get("day"), "usage day"),
                         read_int(fields.get("entries"), "usage entries", 0, MAX_COUNT), read_int(fields.get("exits"), "usage exits", 0, MAX_COUNT))


def _quota(value: object) -> QuotaCount:
    fields = read_map(value, "event quota", {"day", "slot_start", "persons"})
    return QuotaCount(read_day(fields.get("day"), "quota day"), read_int(fields.get("slot_start"), "quota slot_start", 0, 1439),
                      read_int(fields.get("persons"), "quota persons", -MAX_PERSONS, MAX_PERSONS))


def scalars(value: Mapping, exclude: Sequence[str] = ()) -> dict[str, Scalar]:
    """The entries of ``value`` with a short text key and a small scalar value; the rest is dropped."""
    out: dict[str, Scalar] = {}
    for key, item in value.items():
        if type(key) is not str or len(key) > 32 or key in exclude or len(out) >= MAX_EXTRA_FIELDS:
            continue
        if _is_scalar(item):
            out[key] = item
    return out


def _is_scalar(item: object) -> bool:
    if item is None or type(item) is bool:
        return True
    if type(item) is int:
        return -MAX_SCALAR <= item <= MAX_SCALAR
    if type(item) is float:
        return math.isfinite(item)
    if type(item) is str:
        return len(item) <= MAX_DETAIL
    return type(item) is bytes and len(item) <= 64


def event_map(event: GateEvent) -> dict:
    return {"event_id": event.event_id, "gate": event.gate, "incarnation": event.incarnation, "seq": event.seq, "kind": event.kind.value,
            "at": event.at_ms, "ticket_id": event.ticket_id, "data": event_data_map(event.data)}


def encode_events(events: Sequence[GateEvent]) -> bytes:
    """One MQTT payload: a CBOR array of event maps."""
    return encode([event_map(event) for event in events])


def decode_event(item: object) -> GateEvent:
    fields = read_map(item, "event", {"event_id", "gate", "incarnation", "seq", "kind", "at", "ticket_id", "data"})
    ticket_id = fields.get("ticket_id")
    raw_kind = fields.get("kind")
    try:
        kind = EventKind(raw_kind if isinstance(raw_kind, str) else "")
    except ValueError:
        raise MalformedMessage(f"event kind must be one of {', '.join(EventKind)}") from None
    return GateEvent(
        event_id=read_bytes(fields.get("event_id"), "event_id", EVENT_ID_LENGTH, EVENT_ID_LENGTH),
        gate=_gate(fields.get("gate")),
        incarnation=read_bytes(fields.get("incarnation"), "incarnation", INCARNATION_LENGTH, INCARNATION_LENGTH),
        seq=read_int(fields.get("seq"), "seq", 1, MAX_SEQ),
        kind=kind,
        at_ms=read_int(fields.get("at"), "at", 0, MAX_TIME_MS),
        ticket_id=None if ticket_id is None else read_bytes(ticket_id, "ticket_id", 1, 32),
        data=decode_event_data(fields.get("data", {})),
    )


def decode_events(payload: bytes) -> list[GateEvent]:
    """An events payload: a non-empty array of event maps; all or nothing."""
    items = read_list(decode_payload(payload, "events payload"), "events payload", MAX_EVENTS_PER_MESSAGE)
    if not items:
        raise MalformedMessage("events payload must be a non-empty array of event maps")
    return [decode_event(entry) for entry in items]


def _gate(value: object) -> str:
    try:
        return check_name(value, "gate")
    except TopicError as error:
        raise MalformedMessage(str(error)) from None


# ---- birth, death, heartbeat --------------------------------------------------------------


@dataclass(frozen=True)
class LeaseReport:
    """A quota lease a gate holds and how many persons it has admitted on it."""

    day: str
    slot_start: int
    slot_end: int
    granted: int
    used: int
    lease_id: int
    expires_ms: int


def lease_report_map(lease: LeaseReport) -> dict:
    return {"day": lease.day, "slot": [lease.slot_start, lease.slot_end], "granted": lease.granted, "used": lease.used, "lease_id": lease.lease_id, "expires": lease.expires_ms}


def decode_lease_report(value: object) -> LeaseReport:
    fields = read_map(value, "lease report", {"day", "slot", "granted", "used", "lease_id", "expires"})
    slot = read_list(fields.get("slot"), "lease report slot", 2)
    if len(slot) != 2:
        raise MalformedMessage("lease report slot must be [start, end]")
    return LeaseReport(read_day(fields.get("day"), "lease report day"), read_int(slot[0], "slot start", 0, 1439), read_int(slot[1], "slot end", 1, 1440),
                       read_int(fields.get("granted"), "granted", 0, MAX_COUNT), read_int(fields.get("used"), "used", -MAX_COUNT, MAX_COUNT),
                       read_int(fields.get("lease_id"), "lease_id", 1, MAX_SEQ), read_int(fields.get("expires"), "expires", 0, MAX_TIME_MS))


@dataclass(frozen=True)
class GateSettings:
    """What a gate is configured with that must agree with the hub, sent in every birth and heartbeat.

    ``heartbeat_s``: gate.toml's [hub] heartbeat_seconds (the hub calls a
    gate silent after three of its own intervals); ``timezone``: the site's
    zone the gate reads quota slots and days in; ``hub_kids``: the kids of
    the hub keys the gate trusts (a hub whose key is not among them is
    never believed). On the wire these are flat keys of the report map, so
    an older hub keeps them as plain fields and an older gate simply lacks them.
    """

    heartbeat_s: float
    timezone: str
    hub_kids: tuple[str, ...] = ()


MAX_HUB_KIDS = 8
_KID_HEX = frozenset("0123456789abcdef")


def gate_settings_map(settings: GateSettings) -> dict:
    """The report fields that carry ``settings``."""
    return {"heartbeat_s": settings.heartbeat_s, "timezone": settings.timezone, "hub_kids": ",".join(settings.hub_kids)}


def decode_gate_settings(fields: Mapping[str, object]) -> GateSettings | None:
    """The settings a report (or a stored report's fields) carries; None from a gate too old to send them."""
    heartbeat, zone, kids = fields.get("heartbeat_s"), fields.get("timezone"), fields.get("hub_kids", "")
    if heartbeat is None and zone is None:
        return None
    if not isinstance(heartbeat, (int, float)) or isinstance(heartbeat, bool) or not 0 < heartbeat <= 86_400:
        raise MalformedMessage("heartbeat_s must be a number of seconds 0..86400")
    zone = read_text(zone, "timezone", 64)
    names = tuple(kid for kid in read_text(kids, "hub_kids", MAX_HUB_KIDS * 17, low=0).split(",") if kid)
    if len(names) > MAX_HUB_KIDS or not all(len(kid) == 16 and set(kid) <= _KID_HEX for kid in names):
        raise MalformedMessage(f"hub_kids must be at most {MAX_HUB_KIDS} comma-separated 16-digit hex kids")
    return GateSettings(float(heartbeat), zone, names)


@dataclass(frozen=True)
class HealthReport:
    """A birth, death or heartbeat.

    ``bdseq`` (birth/death sequence, persisted and incremented by the gate on
    every connect) is required on birth and death: a death whose bdseq is older
    than the last birth is stale and must not mark the gate offline.
    ``incarnation`` and ``next_seq`` (the seq its next event will get) let the
    hub see a state that went backwards. ``fields`` holds the small scalars
    shown to the operator (version, rev_seq, backlog, scanner, relay...).
    """

    kind: ReportKind
    bdseq: int | None
    at_ms: int | None
    incarnation: bytes | None = None
    next_seq: int | None = None
    leases: tuple[LeaseReport, ...] = ()
    fields: Mapping[str, Scalar] = field(default_factory=dict)
    settings: GateSettings | None = None  # also kept in ``fields``, so the hub's stored view shows them


_REPORT_KEYS = ("bdseq", "at", "incarnation", "next_seq", "quota")


def encode_health(fields: Mapping[str, object]) -> bytes:
    """A report map as the gate builds it (``quota``: a list of ``lease_report_map``)."""
    return encode(dict(fields))


def decode_health(kind: str, payload: bytes) -> HealthReport:
    report_kind = ReportKind(kind)
    fields = decode_payload(payload, f"{kind} payload", allow_floats=True)
    if type(fields) is not dict or len(fields) > MAX_EXTRA_FIELDS + len(_REPORT_KEYS):
        raise MalformedMessage(f"{kind} payload must be a map of at most {MAX_EXTRA_FIELDS + len(_REPORT_KEYS)} fields")
    bdseq = fields.get("bdseq")
    if report_kind is not ReportKind.HEARTBEAT or bdseq is not None:
        bdseq = read_int(bdseq, "bdseq", 0, MAX_SEQ)
    incarnation = fields.get("incarnation")
    quota = fields.get("quota")
    return HealthReport(
        kind=report_kind,
        bdseq=bdseq,
        at_ms=read_opt_int(fields.get("at"), "at", 0, MAX_TIME_MS),
        incarnation=None if incarnation is None else read_bytes(incarnation, "incarnation", INCARNATION_LENGTH, INCARNATION_LENGTH),
        next_seq=read_opt_int(fields.get("next_seq"), "next_seq", 1, MAX_SEQ),
        leases=() if quota is None else tuple(decode_lease_report(item) for item in read_list(quota, "quota", MAX_LEASE_REPORTS)),
        fields=scalars(fields, exclude=_REPORT_KEYS),
        settings=decode_gate_settings(fields),
    )


# ---- ping and snapshot request ------------------------------------------------------------


@dataclass(frozen=True)
class Ping:
    """A gate asking "are you there, what time is it, where are the streams?"; answered by a ``Pong``.

    ``nonce`` is fresh random bytes the answer must echo. ``incarnation`` and
    ``next_seq`` let the hub tell a gate whose state went backwards to reset.
    """

    nonce: bytes
    incarnation: bytes
    next_seq: int


def encode_ping(ping: Ping) -> bytes:
    return encode({"nonce": ping.nonce, "incarnation": ping.incarnation, "next_seq": ping.next_seq})


def decode_ping(payload: bytes) -> Ping:
    fields = read_map(decode_payload(payload, "ping"), "ping", {"nonce", "incarnation", "next_seq"})
    return Ping(read_bytes(fields.get("nonce"), "nonce", NONCE_LENGTH, NONCE_LENGTH),
                read_bytes(fields.get("incarnation"), "incarnation", INCARNATION_LENGTH, INCARNATION_LENGTH),
                read_int(fields.get("next_seq"), "next_seq", 1, MAX_SEQ))


@dataclass(frozen=True)
class SnapshotRequest:
    """A gate asking for a snapshot of ``stream`` because it holds only up to ``from_seq``."""

    stream: str
    from_seq: int


def encode_snapshot_request(request: SnapshotRequest) -> bytes:
    return encode({"stream": request.stream, "from_seq": request.from_seq})


def decode_snapshot_request(payload: bytes) -> SnapshotRequest:
    fields = read_map(decode_payload(payload, "snapshot request"), "snapshot request", {"stream", "from_seq"})
    stream = fields.get("stream")
    if stream not in SITE_STREAMS:
        raise MalformedMessage(f"snapshot request stream must be one of {', '.join(SITE_STREAMS)}")
    return SnapshotRequest(stream, read_int(fields.get("from_seq"), "from_seq", 0, MAX_SEQ))
