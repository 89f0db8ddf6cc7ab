"""Hub <-> gates over a real Mosquitto with the site ACL on: revocations, used marks, events, acks."""

from __future__ import annotations

import argparse
import io
import json
import os
from contextlib import redirect_stdout

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.sqlite_store import SqliteHubStore
from lungta import hub_cli
from protocol.hub_messages import RevocationEntry, revocations_body, sign_message
from protocol.topics import gate_topic, hub_topic
from tests.hub.conftest import TIMEOUT, start_hub
from testkit.hub_config import write_hub_config


def hub_command(*argv: str) -> str:
    parser = argparse.ArgumentParser()
    hub_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["hub", *argv])
    out = io.StringIO()
    with redirect_stdout(out):
        args.run(args)
    return out.getvalue()


def revoke(config_path, *ticket_ids: bytes) -> dict:
    return json.loads(hub_command("revoke", "--config", str(config_path), *(t.hex() for t in ticket_ids), "--reason", "refund"))


def stored_events(hub) -> list[tuple]:
    store = SqliteHubStore(hub.config.database)
    try:
        return store._db.execute("SELECT gate, seq, event_id FROM events ORDER BY gate, seq").fetchall()
    finally:
        store.close()


def test_revocation_reaches_every_gate_signed_by_the_hub(hub, hub_config_path, gate_factory, hub_key):
    gates = [gate_factory(name) for name in ("g1", "g2")]
    ticket = os.urandom(12)
    record = revoke(hub_config_path, ticket)
    assert record["seqs"] == [1]
    for gate in gates:
        assert gate.wait_for(lambda view: ticket in view.revoked, TIMEOUT), gate.view
        (message,) = [m for m in gate.view.accepted if m.stream == "revocations"]
        assert message.seq == 1 and message.kid.hex() == bytes.fromhex(message.kid.hex()).hex()
        assert gate.view.refused == []


def test_forged_and_replayed_messages_on_hub_topics_are_refused_by_the_gate(hub, hub_config_path, gate_factory, broker):
    """Even with the hub's broker password stolen, only the hub's signing key makes a gate act."""
    gate = gate_factory("g1")
    revoke(hub_config_path, b"\x01" * 12)
    revocations = lambda view: [m for m in view.accepted if m.stream == "revocations"]  # noqa: E731 (the birth's ack is accepted too)
    assert gate.wait_for(lambda view: len(revocations(view)) == 1, TIMEOUT)
    genuine = revocations(gate.view)[0]
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stolen-hub-password", protocol=mqtt.MQTTv5)
    intruder.username_pw_set(broker.hub_user, broker.password(broker.hub_user))
    intruder.connect(broker.host, broker.port)
    intruder.loop_start()
    try:
        from nacl.signing import SigningKey

        forged = sign_message("revocations", 2, 0, revocations_body([]), SigningKey.generate(), site=broker.site)
        intruder.publish(hub_topic(broker.site, "revocations"), forged, qos=1).wait_for_publish(TIMEOUT)
        replay = sign_message("revocations", genuine.seq, genuine.at_ms, genuine.body, hub.service.publisher._key, site=broker.site)
        intruder.publish(hub_topic(broker.site, "revocations"), replay, qos=1).wait_for_publish(TIMEOUT)
        assert gate.wait_for(lambda view: len(view.refused) == 2, TIMEOUT), gate.view.refused
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    assert [reason for _, reason in gate.view.refused] == ["unknown_key", "replay"]
    assert len(revocations(gate.view)) == 1


def test_event_batch_published_twice_is_stored_once_and_acked(hub, gate_factory):
    gate = gate_factory("g1")
    batch = gate.make_events(50)
    gate.publish_events(batch)
    assert gate.wait_for(lambda view: view.acked_seq == 50, TIMEOUT)
    gate.publish_events(batch)
    assert hub.service.wait_for(lambda stats: stats.duplicates == 50, TIMEOUT)
    acks = lambda view: [m for m in view.accepted if m.stream == "ack/g1" and m.body["acked_seq"] > 0]  # noqa: E731 (not the birth's)
    assert gate.wait_for(lambda view: len(acks(view)) == 2, TIMEOUT), "a resent batch is acknowledged again"
    assert [m.body["acked_seq"] for m in acks(gate.view)] == [50, 50]
    assert len(stored_events(hub)) == 50


def test_ack_covers_only_the_contiguous_prefix(hub, gate_factory):
    gate = gate_factory("g1")
    first, second, third = (gate.make_events(10) for _ in range(3))
    gate.publish_events(first)
    gate.publish_events(third)
    assert hub.service.wait_for(lambda stats: stats.events_stored == 20, TIMEOUT)
    assert gate.wait_for(lambda view: view.acked_seq == 10, TIMEOUT)
    gate.publish_events(second)
    assert gate.wait_for(lambda view: view.acked_seq == 30, TIMEOUT)


def test_admission_at_one_gate_is_relayed_as_a_used_mark_to_the_others(hub, gate_factory):
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    ticket = os.urandom(12)
    admission = g1.make_events(1, ticket_ids=[ticket], data={"usage": {"zone": "main", "day": "2026-11-18", "entries": 1, "exits": 0}, "expires": 1_795_100_000})
    g1.publish_events(admission + g1.make_events(1, kind="deny", ticket_ids=[os.urandom(12)], data={}))
    assert g2.wait_for(lambda view: len(view.used) == 1, TIMEOUT)
    (mark,) = g2.view.used
    assert (mark.ticket_id, mark.gate, mark.zone, mark.day, mark.entries, mark.exits, mark.expires) == (ticket, "g1", "main", "2026-11-18", 1, 0, 1_795_100_000)


def test_gate_that_reconnects_after_a_broker_restart_gets_its_queued_messages(hub, hub_config_path, gate_factory, broker):
    gate = gate_factory("g2")
    gate.disconnect()  # clean: the persistent session stays on the broker
    ticket = os.urandom(12)
    revoke(hub_config_path, ticket)
    assert hub.service.wait_for(lambda stats: stats.outbox_published == 1, TIMEOUT), "queued for the absent gate"
    broker.restart()
    assert hub.service.link.subscribed.wait(TIMEOUT), "hub reconnects with backoff"
    gate2 = gate_factory("g2")
    assert gate2.wait_for(lambda view: ticket in view.revoked, TIMEOUT)
    assert gate2.view.gaps == []


def test_a_burst_of_single_refunds_reaches_a_gate_whose_broker_queue_holds_fewer(hub, gate_factory, broker):
    """3,000 one-ticket revocations (a ticket office refunding order after order) while a gate is away, its
    broker queue holding 1,000: coalesced into few deltas, nothing is dropped and the gate needs no snapshot."""
    gate = gate_factory("g2")
    gate.disconnect()  # clean: the persistent session stays on the broker and queues for it
    tickets = [os.urandom(12) for _ in range(3000)]
    office = SqliteHubStore(hub.config.database)  # another connection, as the console's or `lungta hub revoke`'s
    try:
        for ticket in tickets:
            office.add_revocations([RevocationEntry(ticket, 2_000_000_000)], "refund", 0, hub.config.snapshot_chunk)
        deltas = office.last_seq("revocations")
    finally:
        office.close()
    assert deltas < 1000, f"{deltas} deltas for 3,000 refunds"
    assert hub.service.wait_for(lambda stats: stats.outbox_published == deltas, TIMEOUT), "every delta taken by the broker"
    back = gate_factory("g2")
    assert back.wait_for(lambda view: len(view.revoked) == len(tickets), TIMEOUT), f"{len(back.view.revoked)} of 3,000"
    assert back.view.gaps == [] and set(back.view.revoked) == set(tickets)


def test_events_published_while_the_hub_is_down_are_stored_when_it_returns(hub, hub_config_path, gate_factory):
    gate = gate_factory("g1")
    gate.publish_events(gate.make_events(5))
    assert gate.wait_for(lambda view: view.acked_seq == 5, TIMEOUT)
    hub.stop()
    gate.publish_events(gate.make_events(5)).wait_for_publish(TIMEOUT)  # the broker holds them for the hub's session
    again = start_hub(hub_config_path)
    try:
        assert gate.wait_for(lambda view: view.acked_seq == 10, TIMEOUT)
        assert len(stored_events(again)) == 10
    finally:
        again.stop()


def test_a_gate_joining_late_sees_a_gap_and_catches_up_from_a_chunked_snapshot(tmp_path, broker, hub_key, gate_factory):
    config_path = write_hub_config(tmp_path / "hub-small-chunks", broker, hub_key, snapshot_chunk=2)
    running = start_hub(config_path)
    try:
        tickets = [os.urandom(12) for _ in range(5)]
        for published, ticket in enumerate(tickets[:4], 1):  # one delta each: published before the next is made
            revoke(config_path, ticket)
            assert running.service.wait_for(lambda stats: stats.outbox_published == published, TIMEOUT)
        gate = gate_factory("g3")  # a new session: nothing was queued for it
        revoke(config_path, tickets[4])
        assert gate.wait_for(lambda view: view.gaps == [("revocations", 5)], TIMEOUT)
        gate.request_snapshot("revocations")
        assert gate.wait_for(lambda view: len(view.snapshots) == 1, TIMEOUT)
        snapshot = gate.view.snapshots[0]
        assert snapshot.as_of == 5 and len({e.ticket_id for e in snapshot.entries}) == 5
        assert set(gate.view.revoked) == set(tickets)
        assert gate.tracker.last("revocations") == 5
        assert [m.body["count"] for m in gate.view.accepted if m.stream == "snapshot/g3"] == [3, 3, 3]
    finally:
        running.stop()


def test_gate_cannot_publish_as_another_gate_or_as_the_hub(hub, gate_factory, broker):
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    spoofed = g2.make_events(1)  # g1 pretending to be g2
    denied = [
        g1.publish_events(spoofed, topic_gate="g2"),
        g1.publish_raw(hub_topic(broker.site, "revocations"), b"not even signed"),
        g1.publish_raw(gate_topic(broker.site, "g2", "death"), b"\xa1ebdseq\x01"),
    ]
    marker = g1.make_events(1)
    g1.publish_events(marker)
    assert g1.wait_for(lambda view: view.acked_seq >= 1 and all(info.mid in view.pubacks for info in denied), TIMEOUT)
    assert all(g1.view.pubacks[info.mid].getName() == "Not authorized" for info in denied)
    assert g2.wait_for(lambda view: len(view.used) == 1, TIMEOUT)  # the marker's used mark: everything before it was handled
    assert [row[2] for row in stored_events(hub)] == [marker[0].event_id]
    assert hub.service.stats.malformed == 0 and g2.view.refused == []


def test_gate_does_not_receive_another_gates_acks(hub, gate_factory, broker):
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    g2.client.subscribe(hub_topic(broker.site, "ack/g1"), qos=1)
    g1.publish_events(g1.make_events(1))
    assert g1.wait_for(lambda view: view.acked_seq == 1, TIMEOUT)
    assert g2.wait_for(lambda view: len(view.used) == 1, TIMEOUT)  # published after the ack, delivered in order
    assert not any(m.stream == "ack/g1" for m in g2.view.accepted)
