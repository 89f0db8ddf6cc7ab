"""Hub to gate: the signed envelope, its sequencing, and the bodies of every hub stream.

Every hub-to-gate message is a COSE_Sign1 (``protocol.cose.sign1``, the hub
key's kid in the protected header) over the CBOR map
``{"site", "stream", "seq", "at", "body"}``. Binding the site and the stream
into the signed bytes means a message cannot be replayed onto another site or
another gate's stream; the per-stream ``seq`` lets a gate refuse replays and
notice gaps (``SequenceTracker``). The answer to a gate's ping (``Pong``)
echoes the gate's nonce, which is what makes its ``at`` a fresh hub time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from nacl.signing import SigningKey

from .cbor import encode
from .cose import decode_sign1, sign1
from .errors import BadSignature, KeyNotValid, TicketError, UnknownKey
from .keys import kid_for
from .messages import (
    INCARNATION_LENGTH,
    MAX_COUNT,
    MAX_MESSAGE_BYTES,
    MAX_SEQ,
    MAX_TIME_MS,
    NONCE_LENGTH,
    MalformedMessage,
    MessageError,
    decode_payload,
    read_bool,
    read_bytes,
    read_day,
    read_int,
    read_list,
    read_map,
    read_text,
)
from .topics import SITE_STREAMS, TopicError, check_name, check_stream
from .trust import TrustStore

MAX_ITEMS = 100_000  # entries in one revocation delta, used-mark batch or snapshot


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
    payload = encode({"site": check_name(site, "site"), "stream": check_stream(stream), "seq": read_int(seq, "seq", 1, MAX_SEQ), "at": read_int(at_ms, "at", 0, MAX_TIME_MS), "body": body})
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
    except (UnknownKey, KeyNotValid) as error:
        raise UnknownHubKey(str(error)) from None
    except BadSignature as error:
        raise BadMessageSignature(str(error)) from None
    except TicketError as error:
        raise MalformedMessage(str(error)) from None
    payload = decode_payload(envelope.payload, "hub message payload")
    fields = read_map(payload, "hub message payload", {"site", "stream", "seq", "at", "body"})
    try:
        message = HubMessage(
            site=check_name(fields.get("site"), "site"),
            stream=check_stream(read_text(fields.get("stream"), "stream")),
            seq=read_int(fields.get("seq"), "seq", 1, MAX_SEQ),
            at_ms=read_int(fields.get("at"), "at", 0, MAX_TIME_MS),
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


class RevocationEntry(NamedTuple):
    """A revoked ticket id and when the entry may be dropped (ticket expiry, Unix s).

    A named tuple, not a dataclass: a snapshot holds millions of them, made
    several times faster this way, and the gate's revocation set takes them
    as the ``(ticket_id, expires)`` pairs they are, without a copy.
    """

    ticket_id: bytes
    expires: int


def revocations_body(entries: Sequence[RevocationEntry]) -> list:
    return [[entry.ticket_id, entry.expires] for entry in entries]


def decode_revocations(body: object) -> list[RevocationEntry]:
    out = []
    body = read_list(body, "revocations body", MAX_ITEMS)
    for item in body:
        if not isinstance(item, list) or len(item) != 2:
            raise MalformedMessage("revocation entry must be [ticket_id, expires]")
        out.append(RevocationEntry(read_bytes(item[0], "ticket_id", 1, 32), read_int(item[1], "expires", 0, MAX_TIME_MS)))
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
    fields = read_map(item, "used mark", {"ticket_id", "gate", "zone", "day", "entries", "exits", "at", "expires"})
    day = read_day(fields.get("day"), "used mark day")
    expires = fields.get("expires")
    try:
        gate = check_name(fields.get("gate"), "gate")
    except TopicError as error:
        raise MalformedMessage(str(error)) from None
    return UsedMark(
        ticket_id=read_bytes(fields.get("ticket_id"), "ticket_id", 1, 32),
        gate=gate,
        zone=read_text(fields.get("zone"), "zone"),
        day=day,
        entries=read_int(fields.get("entries"), "entries", 0, 2**32),
        exits=read_int(fields.get("exits"), "exits", 0, 2**32),
        at_ms=read_int(fields.get("at"), "at", 0, MAX_TIME_MS),
        expires=None if expires is None else read_int(expires, "expires", 0, MAX_TIME_MS),
    )


def decode_used(body: object) -> list[UsedMark]:
    return [decode_used_mark(item) for item in read_list(body, "used body", MAX_ITEMS)]


@dataclass(frozen=True)
class Ack:
    """Every event of ``incarnation`` with seq <= ``acked_seq`` is stored durably by the hub.

    A gate prunes its outbox on an ack only when ``incarnation`` is its own:
    seqs of a wiped or reset state mean nothing for the state that replaced it.
    """

    incarnation: bytes
    acked_seq: int


def ack_body(ack: Ack) -> dict:
    return {"incarnation": ack.incarnation, "acked_seq": ack.acked_seq}


def decode_ack(body: object) -> Ack:
    fields = read_map(body, "ack body", {"incarnation", "acked_seq"})
    return Ack(read_bytes(fields.get("incarnation"), "incarnation", INCARNATION_LENGTH, INCARNATION_LENGTH), read_int(fields.get("acked_seq"), "acked_seq", 0, MAX_SEQ))


@dataclass(frozen=True)
class Pong:
    """The hub's answer to one ping: liveness, fresh hub time, the gate's ack and the stream heads.

    ``nonce`` echoes the ping's: only an answer to the gate's own recent ping
    is evidence that the hub is alive now, and only its envelope ``at`` may set
    the gate's clock. ``heads`` is the last seq the hub has published on each
    site stream, so a gate that is behind asks for the rest at once. ``reset``
    tells a gate whose ``incarnation`` is behind what the hub stored (its state
    went backwards) to start a new incarnation.
    """

    nonce: bytes
    incarnation: bytes
    acked_seq: int
    heads: dict[str, int]
    reset: bool = False


def pong_body(pong: Pong) -> dict:
    return {"nonce": pong.nonce, "incarnation": pong.incarnation, "acked_seq": pong.acked_seq, "heads": dict(pong.heads), "reset": pong.reset}


def decode_pong(body: object) -> Pong:
    fields = read_map(body, "pong body", {"nonce", "incarnation", "acked_seq", "heads", "reset"})
    heads = read_map(fields.get("heads"), "pong heads", SITE_STREAMS)
    return Pong(
        nonce=read_bytes(fields.get("nonce"), "nonce", NONCE_LENGTH, NONCE_LENGTH),
        incarnation=read_bytes(fields.get("incarnation"), "incarnation", INCARNATION_LENGTH, INCARNATION_LENGTH),
        acked_seq=read_int(fields.get("acked_seq"), "acked_seq", 0, MAX_SEQ),
        heads={stream: read_int(seq, f"{stream} head", 0, MAX_SEQ) for stream, seq in heads.items()},
        reset=read_bool(fields.get("reset"), "reset"),
    )


@dataclass(frozen=True)
class Command:
    """An operator command for one gate, e.g. ``emergency_open`` with ``{"on": True}``."""

    name: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CommandArgs:
    """The arguments a command takes, their exact types, and which must be given."""

    types: Mapping[str, type]
    required: tuple[str, ...] = ()


# The commands gates act on. The hub refuses anything else before signing it, and a gate
# refuses a known command whose arguments are not exactly these types: ``"on": 1`` or
# ``"on": "false"`` is malformed, never read as "not true" (which turned the emergency off).
# ``refresh_revocations``: take a full revocation snapshot now; the hub sends it to every gate
# after an un-revocation, which a delta cannot carry (gate/sync/inbox.py handles it, not the daemon).
REFRESH_REVOCATIONS = "refresh_revocations"
COMMANDS: Mapping[str, CommandArgs] = {
    "emergency_open": CommandArgs({"on": bool, "reason": str}, required=("on",)),
    REFRESH_REVOCATIONS: CommandArgs({}),
}


def command_args_problem(name: str, args: Mapping[object, object]) -> str | None:
    """Why ``args`` are not what command ``name`` takes (a missing, unknown or mistyped argument), or None."""
    spec = COMMANDS[name]
    for key, value in args.items():
        expected = spec.types.get(key) if isinstance(key, str) else None
        if expected is None:
            return f"command {name} has no argument {key!r} (it takes {', '.join(spec.types)})"
        if type(value) is not expected:  # type(): True is an int, 1 is not a bool
            kind = "true or false" if expected is bool else expected.__name__
            return f"command {name} argument {key}={value!r} must be {kind}"
    missing = [key for key in spec.required if key not in args]
    return f"command {name} needs argument {missing[0]}" if missing else None


@dataclass(frozen=True)
class EmergencyOpen:
    """An ``emergency_open`` command, typed: open (``on``) or close every lane, and why (shown in the gate's status)."""

    on: bool
    reason: str = "hub command"

    @classmethod
    def of(cls, command: Command) -> EmergencyOpen:
        """From a command ``decode_command`` checked (``on`` a bool, ``reason`` a str when given)."""
        return cls(command.args["on"], command.args.get("reason", cls.reason))


def command_body(command: Command) -> dict:
    return {"name": command.name, "args": command.args}


def decode_command(body: object) -> Command:
    """A command as signed by the hub; a known command's arguments are checked against ``COMMANDS``.

    An unknown name passes (a newer hub's command; the gate logs and ignores it).
    """
    fields = read_map(body, "command body", {"name", "args"})
    args = fields.get("args", {})
    if type(args) is not dict or len(args) > 64:
        raise MalformedMessage("command args must be a map of at most 64 entries")
    name = read_text(fields.get("name"), "command name")
    problem = command_args_problem(name, args) if name in COMMANDS else None
    if problem is not None:
        raise MalformedMessage(problem)
    return Command(name, args)


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
    fields = read_map(body, "quota lease", {"day", "slot", "granted", "lease_id", "expires"})
    day = read_day(fields.get("day"), "quota lease day")
    slot = fields.get("slot")
    if not isinstance(slot, list) or len(slot) != 2:
        raise MalformedMessage("quota lease slot must be [start, end] in minutes of the day")
    start, end = read_int(slot[0], "slot start", 0, 1439), read_int(slot[1], "slot end", 1, 1440)
    if end <= start:
        raise MalformedMessage("quota lease slot must end after it starts")
    return QuotaLease(day, start, end, read_int(fields.get("granted"), "granted", 0, MAX_COUNT), read_int(fields.get("lease_id"), "lease_id", 1, MAX_SEQ), read_int(fields.get("expires"), "expires", 0, MAX_TIME_MS))
