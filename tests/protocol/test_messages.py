"""The signed hub envelope, its sequencing and bodies, and the gate reports: bytes only, no broker."""

from __future__ import annotations

import os

import cbor2
import pytest
from nacl.signing import SigningKey

from protocol.cose import sign1
from protocol.keys import kid_for
from protocol.messages import MalformedMessage
from protocol.hub_messages import (
    BadMessageSignature,
    QuotaLease,
    RevocationEntry,
    SequenceTracker,
    UnknownHubKey,
    UsedMark,
    Verdict,
    WrongStream,
    Ack,
    Pong,
    MAX_ITEMS,
    ack_body,
    decode_ack,
    decode_lease,
    decode_pong,
    pong_body,
    decode_revocations,
    decode_used,
    lease_body,
    open_message,
    revocations_body,
    sign_message,
    used_body,
)
from protocol.snapshots import SnapshotAssembler, SnapshotMismatch, decode_snapshot_chunk, snapshot_bodies
from protocol.gate_messages import (
    EventData,
    EventKind,
    GateEvent,
    Ping,
    decode_ping,
    encode_ping,
    SnapshotRequest,
    decode_events,
    decode_health,
    decode_snapshot_request,
    encode_events,
    encode_health,
    encode_snapshot_request,
)
from protocol.topics import TopicError, ack_stream, gate_topic, hub_topic, parse_gate_topic, stream_of_hub_topic
from testkit.tickets import NOW, SITE




def test_signed_message_opens_with_the_hub_key(hub_key, hub_trust):
    body = revocations_body([RevocationEntry(b"\x01" * 12, NOW + 86_400)])
    data = sign_message("revocations", 7, NOW * 1000, body, hub_key, site=SITE)
    message = open_message(data, hub_trust, NOW, site=SITE, stream="revocations")
    assert (message.site, message.stream, message.seq, message.at_ms) == (SITE, "revocations", 7, NOW * 1000)
    assert message.kid == kid_for(hub_key.verify_key)
    assert decode_revocations(message.body) == [RevocationEntry(b"\x01" * 12, NOW + 86_400)]


def test_message_signed_by_an_untrusted_key_is_refused_as_unknown_key(hub_trust):
    forged = sign_message("revocations", 1, NOW * 1000, [], SigningKey.generate(), site=SITE)
    with pytest.raises(UnknownHubKey):
        open_message(forged, hub_trust, NOW)


def test_message_claiming_the_hub_kid_but_signed_by_another_key_fails_the_signature(hub_key, hub_trust):
    payload = cbor2.dumps({"site": SITE, "stream": "used", "seq": 1, "at": 0, "body": []})
    forged = sign1(payload, kid_for(hub_key.verify_key), SigningKey.generate())
    with pytest.raises(BadMessageSignature):
        open_message(forged, hub_trust, NOW)


def test_a_flipped_payload_byte_fails_the_signature(hub_key, hub_trust):
    data = bytearray(sign_message("used", 3, NOW * 1000, [], hub_key, site=SITE))
    data[-70] ^= 0x01  # inside the payload, just before the 64-byte signature
    with pytest.raises((BadMessageSignature, MalformedMessage)):
        open_message(bytes(data), hub_trust, NOW)


def test_genuine_message_on_another_stream_or_site_is_refused(hub_key, hub_trust):
    data = sign_message(ack_stream("g1"), 1, NOW * 1000, {"acked_seq": 5}, hub_key, site=SITE)
    with pytest.raises(WrongStream):
        open_message(data, hub_trust, NOW, stream=ack_stream("g2"))
    with pytest.raises(WrongStream):
        open_message(data, hub_trust, NOW, site="jokhang")


@pytest.mark.parametrize("data", [b"", b"\xff", cbor2.dumps([1, 2, 3]), cbor2.dumps("hello"), os.urandom(200)])
def test_garbage_is_malformed_never_a_library_error(data, hub_trust):
    with pytest.raises(MalformedMessage):
        open_message(data, hub_trust, NOW)


def test_signed_payload_with_an_unknown_field_is_malformed(hub_key, hub_trust):
    payload = cbor2.dumps({"site": SITE, "stream": "used", "seq": 1, "at": 0, "body": [], "extra": 1})
    with pytest.raises(MalformedMessage, match="unknown field"):
        open_message(sign1(payload, kid_for(hub_key.verify_key), hub_key), hub_trust, NOW)


def test_tracker_accepts_the_next_seq_and_refuses_replays_and_old_seqs():
    tracker = SequenceTracker()
    assert tracker.check("revocations", 1) == "accept"
    tracker.advance("revocations", 1)
    assert tracker.check("revocations", 1) is Verdict.REPLAY
    assert tracker.check("revocations", 0) is Verdict.REPLAY
    assert tracker.check("revocations", 2) is Verdict.ACCEPT


def test_tracker_reports_a_gap_on_delta_streams_only():
    tracker = SequenceTracker({"revocations": 4, "ack/g1": 4})
    assert tracker.check("revocations", 6) is Verdict.GAP
    assert tracker.check("used", 2) is Verdict.GAP
    assert tracker.check("ack/g1", 9) is Verdict.ACCEPT


def test_tracker_reset_to_a_snapshot_makes_older_deltas_replays():
    tracker = SequenceTracker({"revocations": 2})
    tracker.reset("revocations", 10)
    assert tracker.check("revocations", 9) is Verdict.REPLAY
    assert tracker.check("revocations", 11) is Verdict.ACCEPT
    assert tracker.state() == {"revocations": 10}


def test_snapshot_chunks_reassemble_in_any_order_and_check_the_hash():
    entries = [RevocationEntry(i.to_bytes(12, "big"), NOW + i) for i in range(25)]
    bodies = snapshot_bodies("revocations", 42, revocations_body(entries), 10, b"s" * 16)
    assert [body["count"] for body in bodies] == [3, 3, 3]
    assembler = SnapshotAssembler()
    assert assembler.add(decode_snapshot_chunk(bodies[2])) is None
    assert assembler.add(decode_snapshot_chunk(bodies[0])) is None
    snapshot = assembler.add(decode_snapshot_chunk(bodies[1]))
    assert (snapshot.of, snapshot.as_of, snapshot.entries) == ("revocations", 42, entries)


def test_a_snapshot_larger_than_one_message_bound_is_installed_whole():
    """A site with more unexpired revocations than one delta may carry (MAX_ITEMS) still gets them all
    in one snapshot: the bound is per chunk (a gate refused every snapshot of a 200,000-revocation hub)."""
    entries = [[i.to_bytes(12, "big"), NOW + 1] for i in range(MAX_ITEMS + 2000)]
    assembler = SnapshotAssembler()
    snapshots = [assembler.add(decode_snapshot_chunk(body)) for body in snapshot_bodies("revocations", 7, entries, 2000, b"s" * 16)]
    assert len(snapshots[-1].entries) == MAX_ITEMS + 2000 and snapshots[-1].entries[-1].ticket_id == (MAX_ITEMS + 1999).to_bytes(12, "big")


def test_snapshot_with_a_substituted_chunk_is_refused():
    good = snapshot_bodies("revocations", 1, [[b"a" * 12, 1], [b"b" * 12, 2]], 1, b"s" * 16)
    other = snapshot_bodies("revocations", 1, [[b"a" * 12, 1], [b"c" * 12, 2]], 1, b"s" * 16)
    assembler = SnapshotAssembler()
    assembler.add(decode_snapshot_chunk(good[0]))
    with pytest.raises(SnapshotMismatch):
        assembler.add(decode_snapshot_chunk({**other[1], "sha256": good[1]["sha256"]}))


def test_empty_snapshot_is_one_chunk_of_nothing():
    (body,) = snapshot_bodies("used", 0, [], 2000, b"e" * 16)
    assert SnapshotAssembler().add(decode_snapshot_chunk(body)).entries == []


INCARNATION = b"i" * 16


def event(seq: int, **overrides: object) -> GateEvent:
    fields = {"event_id": bytes([seq]) * 16, "gate": "g1", "incarnation": INCARNATION, "seq": seq, "kind": EventKind.ADMISSION, "at_ms": NOW * 1000,
              "ticket_id": b"t" * 12, "data": EventData(extra={"day": "2026-11-18"})}
    return GateEvent(**{**fields, **overrides})


def test_events_round_trip_as_an_array():
    events = [event(1), event(2, ticket_id=None, kind=EventKind.DENY, data=EventData())]
    assert decode_events(encode_events(events)) == events
    single = cbor2.dumps({"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 3, "kind": "deny", "at": 5, "ticket_id": None, "data": {}})
    with pytest.raises(MalformedMessage):
        decode_events(single)


def test_self_referencing_event_data_is_never_re_encoded():
    """Shared-value tags 28/29 make a map that contains itself: re-encoding it once crashed the hub."""
    shared = bytes.fromhex("d81ca1616bd81d00")  # tag 28 {"k": tag 29 (0)}
    item = cbor2.loads(encode_events([event(1)]))[0]
    poisoned = cbor2.dumps([{**item, "data": {}}]).replace(cbor2.dumps({}), shared, 1)
    try:
        (decoded,) = decode_events(poisoned)
    except MalformedMessage:
        return  # a strict decoder refuses the tags outright (protocol/cbor.py)
    assert dict(decoded.data.extra) == {}, "the self-referencing value is dropped, not kept"
    assert cbor2.loads(encode_events([decoded]))[0]["data"] == {}


@pytest.mark.parametrize(
    "item",
    [
        {"event_id": b"short", "gate": "g1", "incarnation": INCARNATION, "seq": 1, "kind": "admission", "at": 1},
        {"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 0, "kind": "admission", "at": 1},
        {"event_id": b"x" * 16, "gate": "g/1", "incarnation": INCARNATION, "seq": 1, "kind": "admission", "at": 1},
        {"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 1, "kind": "admission", "at": 1, "data": []},
        {"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 1, "kind": "admission", "at": 1, "surprise": 1},
        {"event_id": b"x" * 16, "gate": "g1", "seq": 1, "kind": "admission", "at": 1},
        {"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 1, "kind": "teleport", "at": 1},
        {"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 1, "kind": "admission", "at": 2**53 + 1},
        {"event_id": b"x" * 16, "gate": "g1", "incarnation": INCARNATION, "seq": 1, "kind": "admission", "at": 1, "data": {"persons": 2**31}},
    ],
)
def test_a_malformed_event_refuses_the_whole_message(item):
    with pytest.raises(MalformedMessage):
        decode_events(cbor2.dumps([cbor2.loads(encode_events([event(1)]))[0], item]))


def test_used_marks_round_trip_with_optional_fields():
    marks = [UsedMark(b"t" * 12, "g1", "main", "2026-11-18", 1, 0, 5), UsedMark(b"u" * 12, "g2", "inner", "2026-11-18", 2, 1, 6, expires=NOW)]
    assert decode_used(cbor2.loads(cbor2.dumps(used_body(marks)))) == marks


@pytest.mark.parametrize("change", [{"day": None}, {"entries": -1}, {"zone": ""}, {"gate": "a/b"}, {"undo": True}])
def test_a_bad_used_mark_is_refused(change):
    item = {**used_body([UsedMark(b"t" * 12, "g1", "main", "2026-11-18", 1, 0, 5)])[0], **change}
    with pytest.raises(MalformedMessage):
        decode_used([item])


def test_quota_leases_round_trip_and_bad_slots_are_refused():
    lease = QuotaLease("2026-11-18", 540, 600, 120, 7, NOW * 1000)
    assert decode_lease(cbor2.loads(cbor2.dumps(lease_body(lease)))) == lease
    for slot in ([600, 540], [0, 1441], [540]):
        with pytest.raises(MalformedMessage):
            decode_lease({**lease_body(lease), "slot": slot})


def test_birth_and_death_need_a_bdseq_heartbeat_does_not():
    with pytest.raises(MalformedMessage, match="bdseq"):
        decode_health("death", encode_health({"at": 1}))
    beat = decode_health("heartbeat", encode_health({"backlog": 3, "version": "1.0"}))
    assert (beat.bdseq, beat.fields["backlog"]) == (None, 3)
    assert decode_health("birth", encode_health({"bdseq": 4})).bdseq == 4


def test_snapshot_request_and_ack_bodies():
    assert decode_snapshot_request(encode_snapshot_request(SnapshotRequest("used", 9))) == SnapshotRequest("used", 9)
    with pytest.raises(MalformedMessage):
        decode_snapshot_request(cbor2.dumps({"stream": "ack/g1", "from_seq": 1}))
    assert decode_ack(ack_body(Ack(INCARNATION, 12))) == Ack(INCARNATION, 12)
    with pytest.raises(MalformedMessage):
        decode_ack({"acked_seq": 12})


def test_a_pong_echoes_the_nonce_and_carries_the_stream_heads():
    pong = Pong(b"n" * 16, INCARNATION, 5, {"revocations": 3, "used": 9}, reset=True)
    assert decode_pong(cbor2.loads(cbor2.dumps(pong_body(pong)))) == pong
    with pytest.raises(MalformedMessage):
        decode_pong({**pong_body(pong), "heads": {"ack/g1": 1}})
    ping = Ping(b"n" * 16, INCARNATION, 7)
    assert decode_ping(encode_ping(ping)) == ping


def test_topics_round_trip_and_refuse_wildcards():
    assert hub_topic(SITE, "revocations") == "lungta/potala/hub/revocations"
    assert stream_of_hub_topic(SITE, hub_topic(SITE, ack_stream("g1"))) == "ack/g1"
    parsed = parse_gate_topic(gate_topic(SITE, "g-7", "events"))
    assert (parsed.site, parsed.gate, parsed.kind) == (SITE, "g-7", "events")
    for bad in ("g+", "g#", "a/b", "", "x" * 65):
        with pytest.raises(TopicError):
            gate_topic(SITE, bad, "events")
    with pytest.raises(TopicError):
        parse_gate_topic("lungta/potala/gate/g1/secrets")
