"""Harness: any hub-to-gate message into the gate's real inbox, state and revocation files.

Run: python -m fuzz.gate_inbox -runs=1000000. The first bytes pick one of
three ways in, each on the topic of one of the gate's streams (or a topic
made of the input):

- the payload as it arrived, unsigned bytes;
- a COSE_Sign1 really signed with the hub key around the fuzzed payload
  bytes, so the signature holds and the payload decoder is reached;
- a well-formed signed message (site, stream, next or fuzzed seq, time)
  whose body is the fuzzed bytes read by the strict decoder (or the bytes
  themselves when they are not CBOR), so every body decoder and every
  apply step is reached.

Everything goes through ``gate.sync.inbox.HubInbox.handle``, on a real
gate's parts (SQLite state, revocation files) in a scratch directory, rebuilt
every ``REBUILD`` inputs. Findings: any exception out of ``handle``.
"""

from __future__ import annotations

import os

from gate.cache.schema import INCARNATION_KEY
from gate.clock import GateClock
from gate.health import GateHealth
from gate.parts import GateParts, open_gate_parts
from gate.sync.inbox import HubInbox
from protocol.cbor import decode_exactly
from protocol.cose import sign1
from protocol.errors import BadStructure
from protocol.keys import kid_for
from protocol.hub_messages import (
    Ack,
    Command,
    Pong,
    QuotaLease,
    RevocationEntry,
    UsedMark,
    ack_body,
    command_body,
    lease_body,
    pong_body,
    revocations_body,
    sign_message,
    used_body,
    used_mark_map,
)
from protocol.snapshots import snapshot_bodies
from protocol.topics import REVOCATIONS, USED, ack_stream, command_stream, hub_topic, pong_stream, quota_stream, snapshot_stream

from .driver import Draw, run, scratch_dir
from .fixtures import HUB, HUB_TRUST, NOW, RULES, SITE

GATE = RULES.gate_id
STREAMS = (REVOCATIONS, USED, ack_stream(GATE), quota_stream(GATE), command_stream(GATE), snapshot_stream(GATE), pong_stream(GATE))
HUB_KID = kid_for(HUB.verify_key)
INCARNATION = b"\x0f" * 16  # the incarnation of every state the harness opens
REBUILD = 5000
RAW, SIGNED_PAYLOAD, SIGNED_BODY = range(3)


class _Gate:
    """The inbox under test, on a fresh state directory every REBUILD inputs."""

    def __init__(self) -> None:
        self.parts: GateParts | None = None
        self.inbox: HubInbox | None = None
        self.handled = 0

    def get(self) -> HubInbox:
        if self.inbox is None or self.handled % REBUILD == 0:
            if self.parts is not None:
                self.parts.close()
            self.parts = open_gate_parts(scratch_dir("gate") / "state", GateHealth(), clock=GateClock(NOW, wall=lambda: NOW))
            self.parts.store.set_meta(INCARNATION_KEY, INCARNATION)  # fixed, so acks and pongs of this state replay
            self.inbox = HubInbox(RULES.site, RULES.gate_id, self.parts.store, self.parts.revocations, HUB_TRUST, lambda: NOW)
        self.handled += 1
        return self.inbox


GATE_UNDER_TEST = _Gate()


def _body(data: bytes) -> object:
    try:
        return decode_exactly(data, "fuzzed body", allow_floats=True)
    except BadStructure:
        return data


def one_input(data: bytes) -> None:
    inbox = GATE_UNDER_TEST.get()
    draw = Draw(data)
    mode, selector = draw.byte() % 3, draw.byte()
    stream = STREAMS[selector % len(STREAMS)]
    topic = draw.data[draw.pos:draw.pos + draw.byte()].decode("utf-8", "replace") if selector >= 0xF8 else hub_topic(SITE, stream)
    if mode == RAW:
        payload = draw.rest()
    elif mode == SIGNED_PAYLOAD:
        payload = sign1(draw.rest(), HUB_KID, HUB)
    else:
        fuzzed_seq, at_ms = draw.integer(2), NOW * 1000 + draw.integer(4) - 2**31
        seq = inbox.tracker.last(stream) + 1 if fuzzed_seq >= 0xF000 else fuzzed_seq + 1  # pongs: any seq (matched by nonce)
        payload = sign_message(stream, seq, max(at_ms, 0), _body(draw.rest()), HUB, site=SITE)
    outcome = inbox.handle(topic, payload)
    assert outcome is not None


def _signed_body(stream_index: int, body: object) -> bytes:
    """A seed for the third way in: the next seq of the stream, hub time now, this body."""
    from protocol.cbor import encode

    return bytes([SIGNED_BODY, stream_index]) + b"\xff\xff" + (2**31).to_bytes(4, "big") + encode(body)


def seeds() -> list[bytes]:
    """Genuine signed bodies of every stream (pongs and acks included), as the hub builds them."""
    incarnation = INCARNATION
    mark = UsedMark(b"\x02" * 12, "west-2", "white-palace", "2026-11-18", 1, 0, NOW * 1000, NOW + 86_400)
    own = UsedMark(b"\x01" * 12, GATE, "white-palace", "2026-11-18", 1, 1, NOW * 1000, NOW + 86_400)
    lease = QuotaLease("2026-11-18", 540, 600, 10, 1, NOW * 1000 + 120_000)
    revocations = revocations_body([RevocationEntry(b"\x05" * 12, NOW + 3600)])
    revocation_snapshot = snapshot_bodies(REVOCATIONS, 3, revocations * 3, 2, os.urandom(16))
    used_snapshot = snapshot_bodies(USED, 2, [used_mark_map(mark), used_mark_map(own)], 1, os.urandom(16))
    heads = {REVOCATIONS: 3, USED: 2}
    bodies = [
        (0, revocations), (1, used_body([mark, own])),
        (2, ack_body(Ack(incarnation, 1))), (2, ack_body(Ack(b"\x0c" * 16, 4))),  # this state's ack, and one of a replaced state
        (3, lease_body(lease)), (4, command_body(Command("emergency_open", {"on": True, "reason": "drill"}))),
        *[(5, chunk) for chunk in revocation_snapshot + used_snapshot],
        (6, pong_body(Pong(b"\x0d" * 16, incarnation, 0, heads))), (6, pong_body(Pong(b"\x0e" * 16, incarnation, 7, heads, reset=True))),
    ]
    raw = [bytes([RAW, 0]) + sign_message(REVOCATIONS, 1, NOW * 1000, revocations, HUB, site=SITE),
           bytes([RAW, 6]) + sign_message(pong_stream(GATE), 9, NOW * 1000, bodies[-1][1], HUB, site=SITE)]
    return raw + [_signed_body(index, body) for index, body in bodies]


if __name__ == "__main__":
    raise SystemExit(run("gate_inbox", one_input, seeds))
