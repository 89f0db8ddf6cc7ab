"""HubInbox on real gate state, fed signed messages directly (the broker path is in tests/hub)."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.rules import GateRules
from gate.sync.inbox import HubInbox
from gate.validator import open_validator
from protocol.hub_messages import (
    Ack,
    Pong,
    QuotaLease,
    RevocationEntry,
    ack_body,
    pong_body,
    UsedMark,
    lease_body,
    revocations_body,
    sign_message,
    used_body,
)
from protocol.snapshots import snapshot_bodies
from protocol.topics import hub_topic
from protocol.trust import TrustedKey, TrustStore
from testkit.tickets import NOW, SITE

HUB = SigningKey.generate()


@pytest.fixture
def inbox(tmp_path, trust):
    validator = open_validator(tmp_path / "state", GateRules(SITE, gate_id="g1"), trust, clock=GateClock(NOW, wall=lambda: NOW))
    box = HubInbox(validator, validator.revocations, TrustStore([TrustedKey("hub", HUB.verify_key)]), lambda: NOW)
    yield box
    validator.close()


def send(inbox: HubInbox, stream: str, seq: int, body: object, key: SigningKey = HUB, site: str = SITE):
    return inbox.handle(hub_topic(SITE, stream), sign_message(stream, seq, NOW * 1000, body, key, site=site))


def revocation(n: int) -> list:
    return revocations_body([RevocationEntry(bytes([n]) * 12, NOW + 3600)])


def test_deltas_apply_in_order_and_replays_change_nothing(inbox):
    send(inbox, "revocations", 1, revocation(1))
    send(inbox, "revocations", 1, revocation(9))
    assert inbox.revocations.is_revoked(b"\x01" * 12) and not inbox.revocations.is_revoked(b"\x09" * 12)
    assert inbox.counters.replays == 1


def test_a_gap_asks_for_a_snapshot_and_the_deltas_after_it_are_applied_once_it_is_in(inbox):
    send(inbox, "revocations", 1, revocation(1))
    outcome = send(inbox, "revocations", 4, revocation(4))
    assert outcome.snapshot_request.stream == "revocations" and outcome.snapshot_request.from_seq == 1
    send(inbox, "revocations", 5, revocation(5))
    items = revocations_body([RevocationEntry(bytes([n]) * 12, NOW + 3600) for n in (1, 2, 3)])
    for seq, body in enumerate(snapshot_bodies("revocations", 3, items, 2, os.urandom(16)), 1):
        send(inbox, "snapshot/g1", seq, body)
    assert inbox.revocations.sequence == 5
    assert all(inbox.revocations.is_revoked(bytes([n]) * 12) for n in (1, 2, 3, 4, 5))


def test_a_snapshot_that_does_not_match_its_hash_is_refused(inbox):
    items = revocations_body([RevocationEntry(b"\x02" * 12, NOW + 3600)])
    (body,) = snapshot_bodies("revocations", 3, items, 10, os.urandom(16))
    send(inbox, "snapshot/g1", 1, {**body, "sha256": bytes(32)})
    assert inbox.counters.by_reason == {"snapshot_mismatch": 1} and inbox.revocations.sequence == 0


def test_used_marks_of_other_gates_count_and_the_gates_own_are_ignored(inbox):
    marks = [UsedMark(b"a" * 12, "g2", "main", "2026-11-18", 1, 0, NOW * 1000), UsedMark(b"b" * 12, "g1", "main", "2026-11-18", 1, 0, NOW * 1000)]
    send(inbox, "used", 1, used_body(marks))
    store = inbox.validator.store
    assert store.has_usage(b"a" * 12) and not store.has_usage(b"b" * 12)
    assert store.stream_seqs() == {"used": 1}


def test_a_lease_is_installed_and_its_seq_survives_a_restart(inbox, tmp_path, trust):
    send(inbox, "quota/g1", 3, lease_body(QuotaLease("2026-11-18", 600, 720, 40, 1, (NOW + 60) * 1000)))
    assert inbox.validator.store.quota_leases()[0][3] == 40
    again = HubInbox(inbox.validator, inbox.revocations, inbox.hub_trust, lambda: NOW)
    assert again.tracker.last("quota/g1") == 3


@pytest.mark.parametrize(
    "topic_stream, key, site, reason",
    [("revocations", SigningKey.generate(), SITE, "unknown_key"), ("used", HUB, SITE, "wrong_stream"), ("revocations", HUB, "jiuzhaigou", "wrong_stream")],
)
def test_messages_the_hub_did_not_sign_for_this_stream_are_refused(inbox, topic_stream, key, site, reason):
    payload = sign_message("revocations", 1, NOW * 1000, revocation(1), key, site=site)
    inbox.handle(hub_topic(SITE, topic_stream), payload)
    assert inbox.counters.by_reason == {reason: 1} and inbox.revocations.sequence == 0


def test_a_message_for_another_gate_or_garbage_is_refused(inbox):
    inbox.handle("lungta/potala/gate/g1/events", b"x")
    inbox.handle(hub_topic(SITE, "revocations"), b"\xff\x00")
    assert inbox.counters.refused == 2 and inbox.counters.applied == 0


def test_an_ack_prunes_the_outbox_only_for_this_states_own_incarnation(inbox):
    store = inbox.validator.store
    for _ in range(3):
        store.record_event("deny", NOW * 1000, None, {})
    outcome = send(inbox, "ack/g1", 1, ack_body(Ack(os.urandom(16), 3)))
    assert outcome.acked_seq is None and store.backlog() == 3, "another incarnation's seqs mean nothing for this outbox"
    outcome = send(inbox, "ack/g1", 2, ack_body(Ack(store.incarnation, 2)))
    assert outcome.acked_seq == 2 and store.backlog() == 1


def test_a_new_incarnation_renumbers_the_unsent_outbox_from_one(inbox):
    store = inbox.validator.store
    for _ in range(4):
        store.record_event("deny", NOW * 1000, None, {})
    store.acknowledge(2)
    ids = [event.event_id for event in store.pending_events()]
    old = store.incarnation
    assert store.start_incarnation() == store.incarnation != old
    assert [(event.seq, event.event_id) for event in store.pending_events()] == list(zip((1, 2), ids))
    assert store.record_event("deny", NOW * 1000, None, {}).seq == 3


def test_a_pong_is_handed_on_with_its_hub_time_whatever_its_seq(inbox):
    pong = Pong(b"n" * 16, inbox.validator.store.incarnation, 0, {"revocations": 0, "used": 0})
    for seq in (5, 5, 1):
        outcome = send(inbox, "pong/g1", seq, pong_body(pong))
        assert outcome.pong == pong and outcome.pong_at_ms == NOW * 1000
