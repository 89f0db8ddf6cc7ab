"""Gate state that went backwards or was wiped, and hub liveness: real gates, the real hub, a real broker."""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import time

from hub.sqlite_store import SqliteHubStore
from protocol.gate_messages import EventKind, GateEvent, decode_ping
from protocol.hub_messages import Pong, pong_body, sign_message
from protocol.topics import PING, gate_topic, hub_topic, pong_stream
from tests.hub.conftest import TIMEOUT, Gate
from testkit.sim_gate import hub_impostor
from testkit.waiting import wait_until
from tests.hub.test_gate_sync import ticket
from tests.hub.test_sync import hub_command


def hub_events(hub) -> int:
    store = SqliteHubStore(hub.config.database)
    try:
        return store.event_count()
    finally:
        store.close()


def test_a_state_that_went_backwards_is_told_to_reset_and_loses_no_decision(tmp_path, hub, hub_config_path, broker, trust, hub_trust, issuer_key):
    gate = Gate(tmp_path / "gates", broker, "g1", trust, hub_trust).start()
    for _ in range(5):
        gate.validator.scan(ticket(issuer_key))
    gate.wait(lambda g: g.parts.store.backlog() == 0, "five decisions stored at the hub")
    first = gate.parts.store.incarnation
    gate.stop()
    gate.parts.store.set_meta("next_seq", 3)  # restored from an older copy: seqs 3..5 will be made again
    for _ in range(2):
        gate.validator.scan(ticket(issuer_key))
    gate.parts.close()

    back = Gate(tmp_path / "gates", broker, "g1", trust, hub_trust).start()
    try:
        back.wait(lambda g: g.sync.resets == 1 and g.parts.store.backlog() == 0 and g.parts.hub.online, "reset, uploaded and in step again")
        assert back.parts.store.incarnation != first
        assert hub_events(hub) == 7, "the two decisions made after the rollback reached the hub under the new incarnation"
        row = {r["gate"]: r for r in map(json.loads, hub_command("gates", "--config", str(hub_config_path), "--json").splitlines())}["g1"]
        assert row["alert"].startswith("gate state reset"), "the operator sees it"
    finally:
        back.stop()
        back.parts.close()


def test_a_new_incarnation_is_not_hub_online_before_its_snapshots_are_in(hub, gates):
    gate = gates("g2")
    gate.wait(lambda g: g.parts.hub.online, "online once in step")
    assert gate.sync.inbox.installed == {"revocations", "used"}


def test_a_dead_hub_is_noticed_by_the_missing_answers_to_pings(hub, gates):
    gate = gates("g3")
    gate.wait(lambda g: g.parts.hub.online, "online")
    stopped = time.monotonic()
    hub.stop()  # the broker stays up: broker liveness would say nothing is wrong
    gate.wait(lambda g: not g.parts.hub.online, "offline once the hub stops answering")
    noticed = time.monotonic() - stopped
    assert gate.sync.link.connected.is_set(), "the broker link is still up"
    assert noticed < TIMEOUT


def test_a_pong_the_gate_did_not_ask_for_never_sets_its_clock_or_makes_it_online(broker, gates, hub_key):
    gate = gates("g1")  # no hub running: nobody answers its pings
    stale = Pong(os.urandom(16), gate.parts.store.incarnation, 0, {"revocations": 0, "used": 0})
    with hub_impostor(broker.host, broker.port, broker.hub_user, broker.password(broker.hub_user)) as impostor:
        payload = sign_message(pong_stream("g1"), 1, int((time.time() - 6 * 3600) * 1000), pong_body(stale), hub_key, site=broker.site)
        impostor.publish(hub_topic(broker.site, pong_stream("g1")), payload, qos=1).wait_for_publish(TIMEOUT)
        gate.wait(lambda g: g.sync.inbox.counters.applied >= 1, "the signed pong was received")
    assert gate.sync.clock_samples == 0 and gate.parts.clock.read().offset_to_hub is None, "a pong 6 h late, to no ping of ours, sets nothing"
    assert not gate.parts.hub.online


class PingAnswerer:
    """g1's pings as the hub would see them, answered by hand with the hub's key (no hub runs): the late answer
    and the fresh one the rules about hub answers are tested with."""

    def __init__(self, impostor, broker, hub_key) -> None:
        self._impostor, self._site, self._key = impostor, broker.site, hub_key
        self._pings: queue.Queue = queue.Queue()
        impostor.on_message = lambda _client, _userdata, message: self._pings.put((time.monotonic(), decode_ping(message.payload)))
        impostor.subscribe(gate_topic(broker.site, "g1", PING), qos=1)

    def late_ping(self):
        """A ping held until its round trip is longer than max_rtt_seconds (1 s)."""
        received, ping = self._pings.get(timeout=TIMEOUT)
        wait_until(lambda: time.monotonic() - received > 1.2, "the round trip is longer than max_rtt_seconds")  # the delay is the test
        return ping

    def fresh_ping(self):
        while not self._pings.empty():
            self._pings.get_nowait()
        return self._pings.get(timeout=TIMEOUT)[1]

    def answer(self, ping, seq: int, reset: bool = False) -> None:
        pong = Pong(ping.nonce, ping.incarnation, 0, {"revocations": 0, "used": 0}, reset=reset)
        payload = sign_message(pong_stream("g1"), seq, int(time.time() * 1000), pong_body(pong), self._key, site=self._site)
        self._impostor.publish(hub_topic(self._site, pong_stream("g1")), payload, qos=1).wait_for_publish(TIMEOUT)


def test_an_answer_to_the_gates_own_ping_that_comes_too_late_never_sets_its_clock(broker, gates, hub_key, caplog):
    """Hub time only from a fast round trip: a pong held back longer than max_rtt_seconds (a slow hub, a broker
    that delays) echoes a real nonce and is signed, but its time may be anything up to the delay old."""
    caplog.set_level(logging.INFO, logger="gate.sync.client")
    gate = gates("g1")
    assert gate.sync.settings.max_rtt_seconds == 1.0
    with hub_impostor(broker.host, broker.port, broker.hub_user, broker.password(broker.hub_user)) as impostor:
        answerer = PingAnswerer(impostor, broker, hub_key)
        answerer.answer(answerer.late_ping(), 1)
        wait_until(lambda: "too slow to set the clock by" in caplog.text, "the late answer received and judged", TIMEOUT)
        assert gate.sync.clock_samples == 0 and gate.parts.clock.read().offset_to_hub is None
        answerer.answer(answerer.fresh_ping(), 2)  # the control: the same answer at once sets the clock
        gate.wait(lambda g: g.sync.clock_samples == 1, "hub time from a fast answer")
    assert gate.parts.clock.read().offset_to_hub is not None


def test_a_reset_in_a_late_answer_is_ignored_and_obeyed_in_a_fresh_one(broker, gates, hub_key, caplog):
    """Pings held back by a broker outage reach the hub after events the gate made since: the hub then sees a next
    seq it already holds and says 'reset'. Only a fresh answer may make the gate start a new incarnation (the soak
    found all three gates reset after a broker restart, and their renumbered events acknowledged minutes late)."""
    caplog.set_level(logging.INFO, logger="gate.sync.client")
    gate = gates("g1")
    incarnation = gate.parts.store.incarnation
    with hub_impostor(broker.host, broker.port, broker.hub_user, broker.password(broker.hub_user)) as impostor:
        answerer = PingAnswerer(impostor, broker, hub_key)
        answerer.answer(answerer.late_ping(), 1, reset=True)
        wait_until(lambda: "ignored a reset in a hub answer" in caplog.text, "the late answer received and judged", TIMEOUT)
        assert gate.sync.resets == 0 and gate.parts.store.incarnation == incarnation
        answerer.answer(answerer.fresh_ping(), 2, reset=True)  # the control: the same answer at once is obeyed
        gate.wait(lambda g: g.sync.resets == 1, "a fresh reset starts a new incarnation")
    assert gate.parts.store.incarnation != incarnation


def test_retention_prunes_old_events_into_the_archive_and_old_history(tmp_path):
    store = SqliteHubStore(tmp_path / "hub.db")
    try:
        events = [GateEvent(bytes([seq]) * 16, "g1", b"i" * 16, seq, EventKind.DENY, seq) for seq in (1, 2, 3)]
        with store.transaction():
            store.store_events(events[:2], received_ms=1_000)
            store.store_events(events[2:], received_ms=9_000)
        assert store.prune(events_before_ms=5_000, history_before_ms=5_000, tickets_expired_before_s=0, archive=tmp_path / "archive.db") == (2, 0)
        assert store.event_count() == 1 and store.contiguous_seq("g1", b"i" * 16) == 3
        archived = sqlite3.connect(tmp_path / "archive.db")
        assert archived.execute("SELECT count(*) FROM events").fetchone()[0] == 2
        archived.close()
    finally:
        store.close()


def test_events_made_right_after_a_ping_do_not_look_like_a_state_that_went_backwards(hub, gate_factory):
    gate = gate_factory("g1")
    for _ in range(20):  # each round: a ping naming the next seq, then the events the gate makes right after it
        gate.ping()
        gate.publish_events(gate.make_events(3, kind="deny", data={}))
    assert gate.wait_for(lambda view: len(view.pongs) == 20 and view.acked_seq == 60, TIMEOUT)
    assert not any(pong.reset for pong, _ in gate.view.pongs)
