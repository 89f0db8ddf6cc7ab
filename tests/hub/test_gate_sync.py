"""Real gates (validator + HubSync on real SQLite state) and the real hub over Mosquitto with the site ACL."""

from __future__ import annotations

import json
import logging
import time
from datetime import date, datetime

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from gate.decision import Reason
from hub.sqlite_store import SqliteHubStore
from protocol.hub_messages import revocations_body, sign_message
from protocol.ticket import issue_ticket, read_ticket
from protocol.topics import hub_topic
from testkit.tickets import make_claims
from tests.hub.conftest import TIMEOUT, Gate, start_hub
from testkit.hub_config import write_hub_config
from tests.hub.test_sync import hub_command, revoke
from testkit.waiting import wait_until


def ticket(issuer_key: SigningKey, **claims) -> str:
    now = int(time.time())
    return issue_ticket(make_claims(not_before=now - 60, expires=now + 3600, **claims), issuer_key)


def test_an_admission_at_one_gate_makes_the_ticket_used_at_the_others(hub, gates, issuer_key):
    east, west = gates("g1"), gates("g2")
    text = ticket(issuer_key)
    assert east.validator.scan(text).decision.granted
    ticket_id = read_ticket(text).claims.ticket_id
    west.wait(lambda g: g.parts.store.usage(ticket_id, "main", time_day(g)).entries == 1, "the used mark reached the other gate")
    refused = west.validator.scan(text).decision
    assert refused.reason is Reason.ALREADY_USED and "g1" in refused.detail
    east.wait(lambda g: g.parts.store.backlog() == 0, "the hub acknowledged the admission and the gate pruned it")


def time_day(gate: Gate) -> date:
    return datetime.fromtimestamp(time.time(), gate.validator.rules.timezone).date()


def test_hub_revoke_reaches_the_gate_which_then_refuses_the_ticket(hub, hub_config_path, gates, issuer_key):
    gate = gates("g1")
    text = ticket(issuer_key)
    revoke(hub_config_path, read_ticket(text).claims.ticket_id)
    gate.wait(lambda g: g.parts.revocations.sequence == 1, "revocation applied")
    assert gate.validator.scan(text).decision.reason is Reason.REVOKED


def test_an_unrevoked_ticket_is_admitted_again_by_gates_that_held_the_revocation(hub, hub_config_path, gates, issuer_key):
    """A refund cancelled: a delta cannot take a ticket out of a gate's set, so the hub has every gate take a fresh snapshot."""
    gate = gates("g1")
    cancelled, refunded, later = ticket(issuer_key), ticket(issuer_key), ticket(issuer_key)
    ids = {text: read_ticket(text).claims.ticket_id for text in (cancelled, refunded, later)}
    revoke(hub_config_path, ids[cancelled], ids[refunded])
    gate.wait(lambda g: g.parts.revocations.is_revoked(ids[cancelled]), "revocation applied")
    assert gate.validator.scan(cancelled).decision.reason is Reason.REVOKED
    answer = json.loads(hub_command("unrevoke", "--config", str(hub_config_path), ids[cancelled].hex(), "--reason", "refund cancelled"))
    assert (answer["unrevoked"], answer["refresh_sent_to"]) == (1, 1)
    revoke(hub_config_path, ids[later])  # a delta on its way while the gate refreshes is kept
    gate.wait(lambda g: not g.parts.revocations.is_revoked(ids[cancelled]) and g.parts.revocations.is_revoked(ids[later]), "fresh snapshot installed")
    assert gate.validator.scan(cancelled).decision.granted
    assert gate.validator.scan(refunded).decision.reason is Reason.REVOKED and gate.validator.scan(later).decision.reason is Reason.REVOKED
    assert gate.sync.inbox.counters.gaps == 0 and gate.commands == [], "handled by the sync, never shown to the daemon as a command"


def test_hub_gates_says_unknown_not_stale_or_offline_while_the_hub_cannot_hear_the_gates(hub, hub_config_path, gates, broker):
    """The issue's complaint: with the hub down, healthy gates showed 'stale'; with the broker down, 'offline'."""
    gate = gates("g2")
    assert hub.service.wait_for(lambda stats: stats.reports >= 2, TIMEOUT)

    def rows() -> list[dict]:
        return [json.loads(line) for line in hub_command("gates", "--config", str(hub_config_path), "--json").splitlines()]

    assert [(row["status"], "cause" in row) for row in rows()] == [("online", False)]
    broker.stop()
    wait_until(lambda: "cannot reach the broker" in rows()[0].get("cause", ""), "hub gates: the hub cannot reach the broker")
    assert rows()[0]["status"] == "unknown"
    broker.start()
    wait_until(lambda: rows()[0]["status"] == "online", "hub gates: online again once the hub and the gate are back")
    hub.stop()
    (row,) = rows()
    assert row["status"] == "unknown" and row["cause"].startswith("the hub stopped")
    table = hub_command("gates", "--config", str(hub_config_path))
    assert table.startswith("status unknown: the hub stopped") and "stale" not in table


def test_a_backlog_recorded_offline_is_uploaded_once_and_pruned(hub, gates, issuer_key):
    gate = gates("g1", start=False)
    for _ in range(120):  # more than one batch
        gate.validator.scan(ticket(issuer_key))
    assert not gate.parts.hub.online
    gate.start()
    gate.wait(lambda g: g.parts.store.backlog() == 0 and g.parts.hub.online, "backlog drained and the hub answering")
    store = SqliteHubStore(hub.config.database)
    try:
        assert store.event_count() == 120 and store.contiguous_seq("g1", gate.parts.store.incarnation) == 120
    finally:
        store.close()


def test_forged_and_replayed_hub_messages_are_dropped_and_logged(hub, hub_config_path, gates, broker, caplog, issuer_key):
    gate = gates("g1")
    revoke(hub_config_path, b"\x01" * 12)
    gate.wait(lambda g: g.parts.revocations.sequence == 1, "genuine revocation applied")
    hub.stop()  # the client id is the login: a second hub login would take the hub's session over (docs/security.md)
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv5)
    intruder.username_pw_set(broker.hub_user, broker.password(broker.hub_user))  # a stolen broker password
    intruder.connect(broker.host, broker.port)
    intruder.loop_start()
    caplog.set_level(logging.WARNING, logger="gate.sync")
    caplog.clear()
    replays = gate.sync.inbox.counters.replays  # the start-up snapshot may already have made the delta a replay
    try:
        forged = sign_message("revocations", 2, 0, revocations_body([]), SigningKey.generate(), site=broker.site)
        intruder.publish(hub_topic(broker.site, "revocations"), forged, qos=1).wait_for_publish(TIMEOUT)
        intruder.publish(hub_topic(broker.site, "revocations"), b"\x00garbage", qos=1).wait_for_publish(TIMEOUT)
        replayed = sign_message("revocations", 1, 0, revocations_body([]), hub.service.publisher._key, site=broker.site)
        intruder.publish(hub_topic(broker.site, "revocations"), replayed, qos=1).wait_for_publish(TIMEOUT)
        other_site = sign_message("revocations", 2, 0, revocations_body([]), hub.service.publisher._key, site="jiuzhaigou")
        intruder.publish(hub_topic(broker.site, "revocations"), other_site, qos=1).wait_for_publish(TIMEOUT)
        gate.wait(lambda g: g.sync.inbox.counters.refused == 3 and g.sync.inbox.counters.replays == replays + 1, "all refused")
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    assert gate.parts.revocations.sequence == 1
    assert gate.sync.inbox.counters.by_reason == {"unknown_key": 1, "malformed": 1, "wrong_stream": 1}
    assert sum("refused hub message" in r.message for r in caplog.records) == 4
    text = ticket(issuer_key)
    assert gate.validator.scan(text).decision.granted  # and the gate keeps working


def test_a_gate_that_missed_deltas_catches_up_from_a_snapshot(tmp_path, broker, hub_key, gates):
    config_path = write_hub_config(tmp_path / "hub-chunks", broker, hub_key, snapshot_chunk=2)
    running = start_hub(config_path)
    try:
        ids = [bytes([n]) * 12 for n in range(1, 6)]
        for published, ticket_id in enumerate(ids[:4], 1):  # one delta each: published before the next is made
            revoke(config_path, ticket_id)
            assert running.service.wait_for(lambda stats: stats.outbox_published == published, TIMEOUT)
        gate = gates("g3")  # a new session: nothing was queued for it
        gate.wait(lambda g: g.sync.caught_up, "a new incarnation pulls full snapshots first")
        revoke(config_path, ids[4])
        gate.wait(lambda g: g.parts.revocations.sequence == 5, "the next delta applied on top of the snapshot")
        assert all(gate.parts.revocations.is_revoked(ticket_id) for ticket_id in ids)
        assert gate.sync.inbox.counters.snapshots >= 2 and gate.sync.inbox.counters.gaps == 0
    finally:
        running.stop()


def test_the_hub_sees_birth_heartbeats_and_death(hub, hub_config_path, gates):
    gate = gates("g2")
    assert hub.service.wait_for(lambda stats: stats.reports >= 2, TIMEOUT)  # birth and a heartbeat
    table = hub_command("gates", "--config", str(hub_config_path), "--json")
    row = [r for r in map(json.loads, table.splitlines()) if r["gate"] == "g2"][0]
    assert row["status"] == "online" and row["backlog"] == 0 and row["rev_lag"] == 0
    gate.stop()
    assert hub.service.wait_for(lambda stats: any(h.gate == "g2" and not h.online for h in _gates(hub)), TIMEOUT)


def _gates(hub):
    store = SqliteHubStore(hub.config.database)
    try:
        return store.gates()
    finally:
        store.close()


def test_a_signed_hub_command_reaches_its_gate_only(hub, hub_config_path, gates):
    g1, g2 = gates("g1"), gates("g2")
    hub_command("command", "--config", str(hub_config_path), "g1", "emergency_open", "on=true")
    g1.wait(lambda g: len(g.commands) == 1, "command delivered")
    assert g1.commands[0].name == "emergency_open" and g1.commands[0].args == {"on": True}
    assert g2.commands == []


def test_a_gate_briefly_away_gets_what_was_queued_for_it_without_a_snapshot(tmp_path, hub, hub_config_path, broker, trust, hub_trust, issuer_key):
    gate = Gate(tmp_path / "gates", broker, "g1", trust, hub_trust).start()
    gate.wait(lambda g: g.sync.caught_up, "in step with the hub (its first snapshots in)")
    gate.stop()  # a clean stop: the persistent session stays on the broker
    gate.parts.close()
    text = ticket(issuer_key)
    revoke(hub_config_path, read_ticket(text).claims.ticket_id)
    assert hub.service.wait_for(lambda stats: stats.outbox_published == 1, TIMEOUT), "the broker took it for the absent gate"
    back = Gate(tmp_path / "gates", broker, "g1", trust, hub_trust).start()
    try:
        back.wait(lambda g: g.parts.revocations.sequence == 1, "queued revocation delivered on return")
        assert back.sync.inbox.counters.gaps == 0 and back.sync.inbox.counters.snapshots == 0
        assert back.validator.scan(text).decision.reason is Reason.REVOKED
    finally:
        back.stop()
        back.parts.close()


def test_an_idle_gate_takes_hub_time_from_the_answer_to_its_own_ping(hub, gates):
    gate = gates("g2")
    gate.wait(lambda g: g.parts.clock.read().offset_to_hub is not None, "hub time received without any event")
    assert gate.parts.store.backlog() == 0 and gate.parts.clock.read().trusted and gate.sync.clock_samples >= 1


def test_the_sync_worker_reports_itself_alive_only_while_it_runs(hub, gates):
    """What the daemon's supervisor watches: a gate whose hub link died must be restarted, one never started is not running."""
    gate = gates("g1", start=False)
    assert not gate.sync.alive()
    gate.start()
    assert gate.sync.alive()
    gate.stop()
    assert not gate.sync.alive()
