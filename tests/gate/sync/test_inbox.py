"""HubInbox on real gate state, fed signed messages directly (the broker path is in tests/hub)."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from gate.cache.revocations import RevocationSet
from gate.clock import GateClock
from gate.health import GateHealth
from gate.parts import open_gate_parts
from gate.sync.inbox import HubInbox
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
    parts = open_gate_parts(tmp_path / "state", GateHealth(), clock=GateClock(NOW, wall=lambda: NOW))
    box = HubInbox(SITE, "g1", parts.store, parts.revocations, TrustStore([TrustedKey("hub", HUB.verify_key)]), lambda: NOW)
    yield box
    parts.close()


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


def test_a_refresh_replaces_the_set_and_keeps_a_delta_that_came_before_the_snapshot(inbox):
    """After an un-revocation: the snapshot drops the ticket; a delta published after the snapshot was read, but
    delivered before it, waits for it instead of being wiped by it."""
    send(inbox, "revocations", 1, revocations_body([RevocationEntry(bytes([n]) * 12, NOW + 3600) for n in (1, 2)]))
    outcome = send(inbox, "command/g1", 1, {"name": "refresh_revocations", "args": {}})
    assert outcome.command is None and outcome.snapshot_request.stream == "revocations" and inbox.waiting_for_snapshot("revocations")
    send(inbox, "revocations", 2, revocation(3))
    assert not inbox.revocations.is_revoked(b"\x03" * 12), "held until the snapshot is in"
    (body,) = snapshot_bodies("revocations", 1, revocations_body([RevocationEntry(b"\x02" * 12, NOW + 3600)]), 10, os.urandom(16))
    send(inbox, "snapshot/g1", 1, body)
    assert [inbox.revocations.is_revoked(bytes([n]) * 12) for n in (1, 2, 3)] == [False, True, True]
    assert inbox.revocations.sequence == 2 and not inbox.waiting_for_snapshot("revocations") and inbox.counters.gaps == 0


def signed(stream: str, seq: int, body: object) -> tuple[str, bytes]:
    return hub_topic(SITE, stream), sign_message(stream, seq, NOW * 1000, body, HUB, site=SITE)


def test_a_run_of_queued_deltas_is_applied_in_one_durable_write_and_survives_a_restart(inbox, monkeypatch):
    """What a gate back from a partition gets from the broker's queue: 300 deltas at once, one fsync."""
    from gate.cache import revocation_files

    syncs = []
    real = revocation_files._fdatasync
    monkeypatch.setattr(revocation_files, "_fdatasync", lambda fd: (syncs.append(fd), real(fd)))
    run = [signed("revocations", seq, revocation(seq % 256)) for seq in range(1, 301)]
    outcomes = inbox.handle_many(run)
    assert len(outcomes) == 300 and inbox.revocations.sequence == 300 and inbox.counters.applied == 300
    assert inbox.tracker.last("revocations") == 300
    assert len(syncs) == 1, f"{len(syncs)} fsyncs for one run of deltas"
    directory = inbox.revocations.directory
    inbox.revocations.close()
    with RevocationSet.open(directory) as reopened:
        assert reopened.sequence == 300 and reopened.is_revoked(bytes([255]) * 12)


def test_a_malformed_delta_in_a_run_is_refused_and_the_next_one_asks_for_a_snapshot(inbox):
    run = [signed("revocations", 1, revocation(1)), signed("revocations", 2, revocation(2)),
           signed("revocations", 3, {"not": "a delta"}), signed("revocations", 4, revocation(4)), signed("used", 1, used_body([]))]
    outcomes = inbox.handle_many(run)
    assert inbox.revocations.sequence == 2 and inbox.revocations.is_revoked(b"\x02" * 12)
    assert not inbox.revocations.is_revoked(b"\x04" * 12)
    assert inbox.counters.refused == 1 and outcomes[3].snapshot_request.from_seq == 2
    assert inbox.tracker.last("used") == 1  # the message after the run is applied as usual


def test_a_run_the_disk_refuses_is_refused_whole_and_the_stream_falls_back_to_what_is_durable(inbox, monkeypatch):
    from gate.cache import revocation_files

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    inbox.handle_many([signed("revocations", 1, revocation(1))])
    monkeypatch.setattr(revocation_files, "_fdatasync", full)
    outcomes = inbox.handle_many([signed("revocations", seq, revocation(seq)) for seq in (2, 3, 4)])
    monkeypatch.undo()
    assert inbox.revocations.sequence == 1 and inbox.tracker.last("revocations") == 1
    assert inbox.counters.refused == 3 and not inbox.revocations.is_revoked(b"\x02" * 12)
    later = inbox.handle_many([signed("revocations", 5, revocation(5))])
    assert later[0].snapshot_request.from_seq == 1, "the lost run is a gap: the gate asks for a snapshot"
    assert len(outcomes) == 3


def test_a_snapshot_that_does_not_match_its_hash_is_refused(inbox):
    items = revocations_body([RevocationEntry(b"\x02" * 12, NOW + 3600)])
    (body,) = snapshot_bodies("revocations", 3, items, 10, os.urandom(16))
    send(inbox, "snapshot/g1", 1, {**body, "sha256": bytes(32)})
    assert inbox.counters.by_reason == {"snapshot_mismatch": 1} and inbox.revocations.sequence == 0


def test_used_marks_of_other_gates_count_and_the_gates_own_are_ignored(inbox):
    marks = [UsedMark(b"a" * 12, "g2", "main", "2026-11-18", 1, 0, NOW * 1000), UsedMark(b"b" * 12, "g1", "main", "2026-11-18", 1, 0, NOW * 1000)]
    send(inbox, "used", 1, used_body(marks))
    store = inbox.store
    assert store.has_usage(b"a" * 12) and not store.has_usage(b"b" * 12)
    assert store.stream_seqs() == {"used": 1}


def test_a_lease_is_installed_and_its_seq_survives_a_restart(inbox, tmp_path, trust):
    send(inbox, "quota/g1", 3, lease_body(QuotaLease("2026-11-18", 600, 720, 40, 1, (NOW + 60) * 1000)))
    assert inbox.store.quota_leases()[0].granted == 40
    again = HubInbox(SITE, "g1", inbox.store, inbox.revocations, inbox.hub_trust, lambda: NOW)
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
    store = inbox.store
    for _ in range(3):
        store.record_event("deny", NOW * 1000, None, {})
    outcome = send(inbox, "ack/g1", 1, ack_body(Ack(os.urandom(16), 3)))
    assert outcome.acked_seq is None and store.backlog() == 3, "another incarnation's seqs mean nothing for this outbox"
    outcome = send(inbox, "ack/g1", 2, ack_body(Ack(store.incarnation, 2)))
    assert outcome.acked_seq == 2 and store.backlog() == 1


def test_a_new_incarnation_renumbers_the_unsent_outbox_from_one(inbox):
    store = inbox.store
    for _ in range(4):
        store.record_event("deny", NOW * 1000, None, {})
    store.acknowledge(2)
    ids = [event.event_id for event in store.pending_events()]
    old = store.incarnation
    assert store.start_incarnation() == store.incarnation != old
    assert [(event.seq, event.event_id) for event in store.pending_events()] == list(zip((1, 2), ids))
    assert store.record_event("deny", NOW * 1000, None, {}).seq == 3


def test_a_pong_is_handed_on_with_its_hub_time_whatever_its_seq(inbox):
    pong = Pong(b"n" * 16, inbox.store.incarnation, 0, {"revocations": 0, "used": 0})
    for seq in (5, 5, 1):
        outcome = send(inbox, "pong/g1", seq, pong_body(pong))
        assert outcome.pong == pong and outcome.pong_at_ms == NOW * 1000
