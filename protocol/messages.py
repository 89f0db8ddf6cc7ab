"""The hub<->gate messages: the signed hub envelope, its bodies, and gate reports.

Every hub-to-gate message is a COSE_Sign1 (``protocol.cose.sign1``, the hub
key's kid in the protected header) over the CBOR map
``{"site", "stream", "seq", "at", "body"}``. Binding the site and the stream
into the signed bytes means a message cannot be replayed onto another site or
another gate's stream; the per-stream ``seq`` lets a gate refuse replays and
notice gaps (``SequenceTracker``). Gate-to-hub messages are plain CBOR: the
broker's per-gate credentials and ACL authenticate the publisher.

Decoding never trusts its input: every defect raises a ``MessageError``
subclass with a stable ``reason`` code, never a bare library exception.
The wire format is specified in docs/hub-protocol.md.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from .cbor import decode_exactly, encode
from .cose import decode_sign1, sign1
from .errors import BadSignature, KeyNotValid, TicketError, UnknownKey
from .keys import kid_for
from .topics import REVOCATIONS, SITE_STREAMS, TopicError, check_name, check_stream
from .trust import TrustStore

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_SEQ = 2**63 - 1
MAX_TIME_MS = 2**53
EVENT_ID_LENGTH = 16
MAX_EVENTS_PER_MESSAGE = 10_000


class MessageError(Exception):
    """A hub or gate message that must not be acted on; ``reason`` is a stable code."""

    reason = "malformed"


class MalformedMessage(MessageError):
    """Not CBOR / COSE of the expected shape, or a field missing or mistyped."""


class UnknownHubKey(MessageError):
    """The kid names no hub key the gate trusts (or the key is outside its window)."""

    reason = "unknown_key"


class BadMessageSignature(MessageError):
    """The signature does not verify with the hub key the kid names."""

    reason = "bad_signature"


class WrongStream(MessageError):
    """A valid message for another site or stream than the topic it arrived on."""

    reason = "wrong_stream"


@dataclass(frozen=True)
class HubMessage:
    """A verified hub message. ``at_ms`` is hub time (Unix ms) when it was recorded."""

    site: str
    stream: str
    seq: int
    at_ms: int
    body: object
    kid: bytes


def sign_message(stream: str, seq: int, at_ms: int, body: object, key: SigningKey, *, site: str) -> bytes:
    """The COSE_Sign1 bytes the hub publishes for one message of ``stream``."""
    payload = encode({"site": check_name(site, "site"), "stream": check_stream(stream), "seq": _int(seq, "seq", 1, MAX_SEQ), "at": _int(at_ms, "at", 0, MAX_TIME_MS), "body": body})
    return sign1(payload, kid_for(key.verify_key), key)


def open_message(data: bytes, trust: TrustStore, now: int, *, site: str | None = None, stream: str | None = None) -> HubMessage:
    """Verify a hub message with the hub keys in ``trust`` (valid at Unix second ``now``).

    ``site`` and ``stream``, when given, must match what the signed payload says
    (pass the gate's site and the stream of the topic the message arrived on).
    Raises MalformedMessage, UnknownHubKey, BadMessageSignature or WrongStream.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message is {len(data)} bytes, at most {MAX_MESSAGE_BYTES} allowed")
    try:
        envelope = decode_sign1(data)
        key = trust.key_for(envelope.kid, now)
        envelope.verify(key.verify_key)
        payload = decode_exactly(envelope.payload, "hub message payload")
    except (UnknownKey, KeyNotValid) as error:
        raise UnknownHubKey(str(error)) from None
    except BadSignature as error:
        raise BadMessageSignature(str(error)) from None
    except TicketError as error:
        raise MalformedMessage(str(error)) from None
    fields = _map(payload, "hub message payload", {"site", "stream", "seq", "at", "body"})
    try:
        message = HubMessage(
            site=check_name(fields.get("site"), "site"),
            stream=check_stream(_text(fields.get("stream"), "stream")),
            seq=_int(fields.get("seq"), "seq", 1, MAX_SEQ),
            at_ms=_int(fields.get("at"), "at", 0, MAX_TIME_MS),
            body=fields.get("body"),
            kid=envelope.kid,
        )
    except TopicError as error:
        raise MalformedMessage(str(error)) from None
    if site is not None and message.site != site:
        raise WrongStream(f"message is for site {message.site!r}, this is {site!r}")
    if stream is not None and message.stream != stream:
        raise WrongStream(f"message claims stream {message.stream!r} but arrived on {stream!r}")
    return message


class Verdict(enum.StrEnum):
    ACCEPT = "accept"
    REPLAY = "replay"
    GAP = "gap"


class SequenceTracker:
    """The last applied seq per stream; no I/O, the caller persists ``state()``.

    ``check`` does not change anything: call ``advance`` once the message has
    been applied, and ``reset`` after a snapshot taken as of a seq. Streams in
    ``contiguous`` (the site-wide delta streams) report a GAP when a seq is
    skipped; on the per-gate streams (acks, commands, snapshot chunks) every
    message is self-contained, so any newer seq is accepted.
    """

    def __init__(self, last: Mapping[str, int] | None = None, contiguous: Iterable[str] = SITE_STREAMS) -> None:
        self._last = dict(last or {})
        self._contiguous = frozenset(contiguous)

    def last(self, stream: str) -> int:
        return self._last.get(stream, 0)

    def check(self, stream: str, seq: int) -> Verdict:
        last = self.last(stream)
        if seq <= last:
            return Verdict.REPLAY
        if seq > last + 1 and stream in self._contiguous:
            return Verdict.GAP
        return Verdict.ACCEPT

    def advance(self, stream: str, seq: int) -> None:
        """Record ``seq`` as applied; a seq below the current one is ignored."""
        if seq > self.last(stream):
            self._last[stream] = seq

    def reset(self, stream: str, seq: int) -> None:
        """Set the stream to ``seq`` (a snapshot's ``as_of``), even backwards."""
        self._last[stream] = seq

    def state(self) -> dict[str, int]:
        return dict(self._last)


# ---- hub message bodies -------------------------------------------------------------


@dataclass(frozen=True)
class RevocationEntry:
    """A revoked ticket id and when the entry may be dropped (ticket expiry, Unix s)."""

    ticket_id: bytes
    expires: int


def revocations_body(entries: Sequence[RevocationEntry]) -> list:
    return [[entry.ticket_id, entry.expires] for entry in entries]


def decode_revocations(body: object) -> list[RevocationEntry]:
    if not isinstance(body, list):
        raise MalformedMessage("revocations body must be an array of [ticket_id, expires]")
    out = []
    for item in body:
        if not isinstance(item, list) or len(item) != 2:
            raise MalformedMessage("revocation entry must be [ticket_id, expires]")
        out.append(RevocationEntry(_bytes(item[0], "ticket_id", 1, 32), _int(item[1], "expires", 0, MAX_TIME_MS)))
    return out


@dataclass(frozen=True)
class UsedMark:
    """One gate's counters for a ticket in a zone on a day, relayed to every gate of the site.

    The counters are absolute (what ``gate`` has counted so far, after this
    admission, exit or rollback), so applying a mark twice, or an older mark
    after a newer one of the same gate, cannot over-count: a receiving gate
    keeps the mark with the latest ``at_ms`` per (ticket, zone, day, gate).
    ``expires`` (the ticket's expiry, Unix s) tells the hub when to drop it.
    """

    ticket_id: bytes
    gate: str
    zone: str
    day: str
    entries: int
    exits: int
    at_ms: int
    expires: int | None = None


def used_mark_map(mark: UsedMark) -> dict:
    out = {"ticket_id": mark.ticket_id, "gate": mark.gate, "zone": mark.zone, "day": mark.day, "entries": mark.entries, "exits": mark.exits, "at": mark.at_ms}
    if mark.expires is not None:
        out["expires"] = mark.expires
    return out


def used_body(marks: Sequence[UsedMark]) -> list:
    return [used_mark_map(mark) for mark in marks]


def decode_used_mark(item: object) -> UsedMark:
    fields = _map(item, "used mark", {"ticket_id", "gate", "zone", "day", "entries", "exits", "at", "expires"})
    day = fields.get("day")
    if type(day) is not str or len(day) != 10:
        raise MalformedMessage("used mark day must be YYYY-MM-DD")
    expires = fields.get("expires")
    try:
        gate = check_name(fields.get("gate"), "gate")
    except TopicError as error:
        raise MalformedMessage(str(error)) from None
    return UsedMark(
        ticket_id=_bytes(fields.get("ticket_id"), "ticket_id", 1, 32),
        gate=gate,
        zone=_text(fields.get("zone"), "zone"),
        day=day,
        entries=_int(fields.get("entries"), "entries", 0, 2**32),
        exits=_int(fields.get("exits"), "exits", 0, 2**32),
        at_ms=_int(fields.get("at"), "at", 0, MAX_TIME_MS),
        expires=None if expires is None else _int(expires, "expires", 0, MAX_TIME_MS),
    )


def decode_used(body: object) -> list[UsedMark]:
    if not isinstance(body, list):
        raise MalformedMessage("used body must be an array of used marks")
    return [decode_used_mark(item) for item in body]


def ack_body(acked_seq: int) -> dict:
    return {"acked_seq": acked_seq}


def decode_ack(body: object) -> int:
    """The gate seq up to which the hub has durably stored every event."""
    return _int(_map(body, "ack body", {"acked_seq"}).get("acked_seq"), "acked_seq", 0, MAX_SEQ)


@dataclass(frozen=True)
class Command:
    """An operator command for one gate, e.g. ``emergency_open`` with ``{"on": True}``."""

    name: str
    args: dict = field(default_factory=dict)


def command_body(command: Command) -> dict:
    return {"name": command.name, "args": command.args}


def decode_command(body: object) -> Command:
    fields = _map(body, "command body", {"name", "args"})
    args = fields.get("args", {})
    if not isinstance(args, dict):
        raise MalformedMessage("command args must be a map")
    return Command(_text(fields.get("name"), "command name"), args)


@dataclass(frozen=True)
class QuotaLease:
    """The share of a time slot's cap one gate may admit (persons), until ``expires_ms`` (hub time).

    ``granted`` is absolute: the total the gate may have admitted in the slot,
    counting what it already admitted. The hub only raises a live lease; it
    takes places back by letting a lease expire (a gate admits nothing on an
    expired lease), so the cap holds even while a gate is cut off. A higher
    ``lease_id`` replaces a lower one; an older one arriving late is ignored.
    """

    day: str
    slot_start: int
    slot_end: int
    granted: int
    lease_id: int
    expires_ms: int


def lease_body(lease: QuotaLease) -> dict:
    return {"day": lease.day, "slot": [lease.slot_start, lease.slot_end], "granted": lease.granted, "lease_id": lease.lease_id, "expires": lease.expires_ms}


def decode_lease(body: object) -> QuotaLease:
    fields = _map(body, "quota lease", {"day", "slot", "granted", "lease_id", "expires"})
    day = fields.get("day")
    if type(day) is not str or len(day) != 10:
        raise MalformedMessage("quota lease day must be YYYY-MM-DD")
    slot = fields.get("slot")
    if not isinstance(slot, list) or len(slot) != 2:
        raise MalformedMessage("quota lease slot must be [start, end] in minutes of the day")
    start, end = _int(slot[0], "slot start", 0, 1439), _int(slot[1], "slot end", 1, 1440)
    if end <= start:
        raise MalformedMessage("quota lease slot must end after it starts")
    return QuotaLease(day, start, end, _int(fields.get("granted"), "granted", 0, 2**31), _int(fields.get("lease_id"), "lease_id", 1, MAX_SEQ), _int(fields.get("expires"), "expires", 0, MAX_TIME_MS))


@dataclass(frozen=True)
class SnapshotChunk:
    """One chunk of the full state of ``of`` as of stream seq ``as_of``.

    ``data`` is the CBOR array of this chunk's entries, kept as bytes so the
    gate hashes exactly what it received: ``sha256`` is SHA-256 over the
    ``data`` of chunks 0..count-1 concatenated in order.
    """

    of: str
    as_of: int
    snapshot_id: bytes
    index: int
    count: int
    sha256: bytes
    data: bytes


@dataclass(frozen=True)
class Snapshot:
    """A complete, hash-checked snapshot: replace the set for ``of`` and reset its seq to ``as_of``."""

    of: str
    as_of: int
    entries: list


def snapshot_bodies(of: str, as_of: int, entries: Sequence[object], chunk_size: int, snapshot_id: bytes) -> list[dict]:
    """Chunk bodies for a snapshot; ``entries`` are wire items ([id, exp] or used-mark maps)."""
    parts = [encode(list(entries[start:start + chunk_size])) for start in range(0, len(entries), chunk_size)] or [encode([])]
    digest = hashlib.sha256(b"".join(parts)).digest()
    return [{"of": of, "as_of": as_of, "snapshot_id": snapshot_id, "index": index, "count": len(parts), "sha256": digest, "data": data} for index, data in enumerate(parts)]


def decode_snapshot_chunk(body: object) -> SnapshotChunk:
    fields = _map(body, "snapshot chunk", {"of", "as_of", "snapshot_id", "index", "count", "sha256", "data"})
    of = fields.get("of")
    if of not in SITE_STREAMS:
        raise MalformedMessage(f"snapshot chunk 'of' must be one of {', '.join(SITE_STREAMS)}")
    count = _int(fields.get("count"), "count", 1, 1_000_000)
    return SnapshotChunk(
        of=of,
        as_of=_int(fields.get("as_of"), "as_of", 0, MAX_SEQ),
        snapshot_id=_bytes(fields.get("snapshot_id"), "snapshot_id", 1, 32),
        index=_int(fields.get("index"), "index", 0, count - 1),
        count=count,
        sha256=_bytes(fields.get("sha256"), "sha256", 32, 32),
        data=_bytes(fields.get("data"), "data", 1, MAX_MESSAGE_BYTES),
    )


class SnapshotMismatch(MessageError):
    """The chunks of a snapshot do not hash to what they claim; discard and ask again."""

    reason = "snapshot_mismatch"


class SnapshotAssembler:
    """Collects the chunks of one snapshot per ``of``; a newer snapshot id replaces an unfinished one."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[SnapshotChunk, dict[int, bytes]]] = {}

    def add(self, chunk: SnapshotChunk) -> Snapshot | None:
        """The complete snapshot once its last chunk arrives, else None; raises SnapshotMismatch."""
        first, parts = self._parts.get(chunk.of, (chunk, {}))
        if (first.snapshot_id, first.count, first.sha256, first.as_of) != (chunk.snapshot_id, chunk.count, chunk.sha256, chunk.as_of):
            first, parts = chunk, {}
        parts[chunk.index] = chunk.data
        self._parts[chunk.of] = (first, parts)
        if len(parts) < chunk.count:
            return None
        del self._parts[chunk.of]
        ordered = [parts[index] for index in range(chunk.count)]
        if hashlib.sha256(b"".join(ordered)).digest() != chunk.sha256:
            raise SnapshotMismatch(f"{chunk.of} snapshot {chunk.snapshot_id.hex()} does not match its sha256")
        items: list = []
        for data in ordered:
            part = _decode(data, "snapshot chunk data")
            if not isinstance(part, list):
                raise MalformedMessage("snapshot chunk data must be a CBOR array")
            items.extend(part)
        entries = decode_revocations(items) if chunk.of == REVOCATIONS else [decode_used_mark(item) for item in items]
        return Snapshot(chunk.of, chunk.as_of, entries)


# ---- gate to hub ----------------------------------------------------------------------


@dataclass(frozen=True)
class GateEvent:
    """One thing a gate did, from its durable outbox; ``seq`` counts from 1 per gate, never reused."""

    event_id: bytes
    gate: str
    seq: int
    kind: str
    at_ms: int
    ticket_id: bytes | None = None
    data: dict = field(default_factory=dict)


def event_map(event: GateEvent) -> dict:
    return {"event_id": event.event_id, "gate": event.gate, "seq": event.seq, "kind": event.kind, "at": event.at_ms, "ticket_id": event.ticket_id, "data": event.data}


def encode_events(events: Sequence[GateEvent]) -> bytes:
    """One MQTT payload: a CBOR array of event maps (a single map is also accepted on decode)."""
    return encode([event_map(event) for event in events])


def decode_event(item: object) -> GateEvent:
    fields = _map(item, "event", {"event_id", "gate", "seq", "kind", "at", "ticket_id", "data"})
    ticket_id = fields.get("ticket_id")
    data = fields.get("data", {})
    if not isinstance(data, dict):
        raise MalformedMessage("event data must be a map")
    try:
        gate = check_name(fields.get("gate"), "gate")
    except TopicError as error:
        raise MalformedMessage(str(error)) from None
    return GateEvent(
        event_id=_bytes(fields.get("event_id"), "event_id", EVENT_ID_LENGTH, EVENT_ID_LENGTH),
        gate=gate,
        seq=_int(fields.get("seq"), "seq", 1, MAX_SEQ),
        kind=_text(fields.get("kind"), "kind"),
        at_ms=_int(fields.get("at"), "at", 0, MAX_TIME_MS),
        ticket_id=None if ticket_id is None else _bytes(ticket_id, "ticket_id", 1, 32),
        data=data,
    )


def decode_events(payload: bytes) -> list[GateEvent]:
    """Decode an events payload: one event map or an array of them; all or nothing."""
    item = _decode(payload, "events payload")
    items = [item] if isinstance(item, dict) else item
    if not isinstance(items, list) or not items:
        raise MalformedMessage("events payload must be an event map or a non-empty array of them")
    if len(items) > MAX_EVENTS_PER_MESSAGE:
        raise MalformedMessage(f"{len(items)} events in one message, at most {MAX_EVENTS_PER_MESSAGE}")
    return [decode_event(entry) for entry in items]


@dataclass(frozen=True)
class HealthReport:
    """A birth, death or heartbeat; ``fields`` is the whole map the gate sent, kept as is.

    ``bdseq`` (birth/death sequence, persisted and incremented by the gate on
    every connect) is required on birth and death: a death whose bdseq is older
    than the last birth is stale and must not mark the gate offline.
    """

    kind: str
    bdseq: int | None
    at_ms: int | None
    fields: dict


def encode_health(fields: Mapping[str, object]) -> bytes:
    return encode(dict(fields))


def decode_health(kind: str, payload: bytes) -> HealthReport:
    fields = _decode(payload, f"{kind} payload", allow_floats=True)  # heartbeats carry temperature_c
    if not isinstance(fields, dict) or not all(type(key) is str for key in fields):
        raise MalformedMessage(f"{kind} payload must be a map with text keys")
    bdseq = fields.get("bdseq")
    if kind in ("birth", "death") or bdseq is not None:
        bdseq = _int(bdseq, "bdseq", 0, MAX_SEQ)
    at = fields.get("at")
    return HealthReport(kind, bdseq, None if at is None else _int(at, "at", 0, MAX_TIME_MS), fields)


@dataclass(frozen=True)
class SnapshotRequest:
    """A gate asking for a snapshot of ``stream`` because it holds only up to ``from_seq``."""

    stream: str
    from_seq: int


def encode_snapshot_request(request: SnapshotRequest) -> bytes:
    return encode({"stream": request.stream, "from_seq": request.from_seq})


def decode_snapshot_request(payload: bytes) -> SnapshotRequest:
    fields = _map(_decode(payload, "snapshot request"), "snapshot request", {"stream", "from_seq"})
    stream = fields.get("stream")
    if stream not in SITE_STREAMS:
        raise MalformedMessage(f"snapshot request stream must be one of {', '.join(SITE_STREAMS)}")
    return SnapshotRequest(stream, _int(fields.get("from_seq"), "from_seq", 0, MAX_SEQ))


# ---- strict field readers -------------------------------------------------------------


def _decode(payload: bytes, what: str, *, allow_floats: bool = False) -> object:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"{what} is {len(payload)} bytes, at most {MAX_MESSAGE_BYTES} allowed")
    try:
        return decode_exactly(payload, what, allow_floats=allow_floats)
    except TicketError as error:
        raise MalformedMessage(str(error)) from None


def _map(value: object, what: str, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} must be a map")
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise MalformedMessage(f"{what} has unknown field(s) {unknown[:5]!r}")
    return value


def _int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise MalformedMessage(f"{name} must be an integer in {low}..{high}, got {value!r:.40}")
    return value


def _bytes(value: object, name: str, low: int, high: int) -> bytes:
    if type(value) is not bytes or not low <= len(value) <= high:
        raise MalformedMessage(f"{name} must be a byte string of {low}..{high} bytes")
    return value


def _text(value: object, name: str) -> str:
    if type(value) is not str or not 1 <= len(value) <= 64:
        raise MalformedMessage(f"{name} must be a text string of 1..64 characters")
    return value
