"""Large snapshots are built beside the hub's worker: the rest of the site keeps its hub meanwhile.

Real parts: Mosquitto with the site ACL, the hub service, a real gate
(validator + HubSync on real state) taking a snapshot of SIZE revocations,
and simulated gates pinging and asking. SIZE is chosen so the build takes
this hub over a second (asserted): on the worker, every pong waited that long.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from hub.publisher import Publisher
from hub.snapshot_builder import SnapshotBuild, SnapshotBuilder
from hub.sqlite_snapshots import SqliteSnapshotReader
from hub.sqlite_store import SqliteHubStore
from hub.sqlite_tables import HubStoreError
from lungta.config import load_hub_config
from protocol.hub_messages import RevocationEntry
from protocol.topics import PONG, REVOCATIONS, USED, hub_topic, pong_stream
from testkit.broker import Broker
from transport.mqtt import BrokerConfig, MqttLink
from testkit.hub_config import write_hub_config
from testkit.sim_gate import SimGate
from tests.hub.conftest import TIMEOUT, RunningHub, start_hub

SIZE = 500_000  # revocations: enough that building their snapshot takes this hub over 1 s (asserted)
DURING = 150_000  # revocations: a build long enough for several to be added while it runs (asserted)
LONG = 120.0  # seconds allowed for a large snapshot to be built and installed on a loaded machine
EXPIRES = int(time.time()) + 30 * 86_400


@pytest.fixture
def broker(make_broker) -> Broker:
    return make_broker(["g1", "g2", "g3", "g4"])


def revoke(database: Path, count: int, published: bool) -> tuple[list[bytes], int]:
    """Revoke ``count`` new tickets as ``lungta hub revoke`` does (its own connection); ``published``: history no gate
    will see as deltas. The ids and the seq of the last delta."""
    ids = [os.urandom(16) for _ in range(count)]
    store = SqliteHubStore(database, synchronous="normal")
    try:
        with store.transaction():
            rows = store.add_revocations([RevocationEntry(ticket_id, EXPIRES) for ticket_id in ids], "test", int(time.time() * 1000), 2000)
            if published:
                store.mark_published([row.row_id for row in rows])
        return ids, rows[-1].seq
    finally:
        store.close()


def large_hub(tmp_path: Path, broker: Broker, hub_key, size: int) -> tuple[RunningHub, list[bytes]]:
    config_path = write_hub_config(tmp_path / "hub", broker, hub_key)
    ids, _ = revoke(load_hub_config(config_path).database, size, published=True)
    return start_hub(config_path), ids


def build_for(hub: RunningHub, gate: str, stream: str = REVOCATIONS) -> SnapshotBuild:
    assert hub.service.wait_for(lambda stats: any(gate in build.gates and build.stream == stream for build in stats.recent_snapshots), LONG), f"no {stream} snapshot sent to {gate}"
    with hub.service.progress:
        return next(build for build in hub.service.stats.recent_snapshots if gate in build.gates and build.stream == stream)


def pong_stream_topic(site: str, gate: str) -> str:
    return hub_topic(site, pong_stream(gate))


class Pinger:
    """A gate pinging the hub every 0.1 s, as a real gate does, until ``stop``; then how long each answer took to arrive."""

    def __init__(self, gate: SimGate) -> None:
        self.gate = gate
        self.sent: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):  # the pace of the pings, not a synchronisation
            sent = time.time()
            self.sent[self.gate.ping()] = sent

    def stop(self) -> dict[bytes, float]:
        """Seconds from each ping to its pong; every ping must have been answered."""
        self._stop.set()
        self._thread.join(TIMEOUT)
        assert self.gate.wait_for(lambda view: {pong.nonce for pong, _ in view.pongs} >= self.sent.keys(), TIMEOUT), "a ping was never answered"
        with self.gate.changed:
            nonces = [pong.nonce for pong, _ in self.gate.view.pongs]
            received = [at for stream, _, _, at in self.gate.view.receipts if stream.startswith(PONG)]
        arrived = dict(zip(nonces, received))
        return {nonce: arrived[nonce] - sent for nonce, sent in self.sent.items()}


def test_other_gates_pings_are_answered_while_a_large_snapshot_is_built(tmp_path, broker, hub_key, gates, gate_factory):
    hub, _ = large_hub(tmp_path, broker, hub_key, SIZE)
    try:
        pinger = Pinger(gate_factory("g2"))
        big = gates("g1")  # a new state: it pulls a full snapshot of every revocation before it counts as in step
        build = build_for(hub, "g1")
        assert big.sync.wait_for(lambda sync: REVOCATIONS in sync.inbox.installed, LONG), "the snapshot was installed"
        delays = pinger.stop()
    finally:
        hub.stop()
    assert build.entries == SIZE and build.build_s > 1.0, f"the test needs a snapshot that takes the hub over 1 s to build: raise SIZE ({build})"
    assert max(delays.values()) < min(1.0, build.build_s / 2), f"pongs waited for the snapshot build: up to {max(delays.values()):.2f} s during a {build.build_s:.2f} s build"
    assert len(delays) >= build.build_s / 0.1 / 2, "the other gate kept pinging throughout the build"


def test_a_snapshot_holds_every_revocation_up_to_its_seq_while_more_are_added_during_the_build(tmp_path, broker, hub_key, gates):
    hub, initial = large_hub(tmp_path, broker, hub_key, DURING)
    added: list[tuple[bytes, int]] = []
    done = threading.Event()

    def revoke_meanwhile() -> None:
        while not done.wait(0.05):  # the pace of an operator revoking, not a synchronisation
            (ticket_id,), seq = revoke(hub.config.database, 1, published=False)
            added.append((ticket_id, seq))

    adder = threading.Thread(target=revoke_meanwhile, daemon=True)
    adder.start()
    try:
        big = gates("g1")
        build = build_for(hub, "g1")
        done.set()
        adder.join(TIMEOUT)
        head = added[-1][1]
        assert big.sync.wait_for(lambda sync: REVOCATIONS in sync.inbox.installed and big.parts.revocations.sequence == head, LONG), "caught up to the last delta"
    finally:
        done.set()
        hub.stop()
    with sqlite3.connect(hub.config.database) as db:
        (up_to_as_of,) = db.execute("SELECT count(*) FROM revocations WHERE seq <= ?", (build.as_of,)).fetchone()
    assert build.entries == up_to_as_of, "the snapshot is the set as of its seq: nothing missing, nothing newer"
    assert any(seq > build.as_of for _, seq in added), "revocations were committed while the snapshot was built"
    revocations = big.parts.revocations
    assert len(revocations) == DURING + len(added)
    assert all(revocations.is_revoked(ticket_id) for ticket_id, _ in added) and all(revocations.is_revoked(ticket_id) for ticket_id in initial[::97])


def test_gates_asking_together_share_one_build(tmp_path, broker, hub_key, gate_factory):
    hub, _ = large_hub(tmp_path, broker, hub_key, DURING // 2)
    try:
        # they ask but do not subscribe to the chunks: only the build is looked at
        asking = [gate_factory(name, subscriptions=[pong_stream_topic(broker.site, name)]) for name in ("g3", "g4")]
        for gate in asking:
            gate.request_snapshot(REVOCATIONS)
        build = build_for(hub, "g3")
        with hub.service.progress:
            builds = [build for build in hub.service.stats.recent_snapshots if build.stream == REVOCATIONS]
    finally:
        hub.stop()
    assert builds == [build] and build.gates == ("g3", "g4"), f"two gates asking within the same second share one build: {builds}"


def test_a_hub_stopping_during_a_large_build_stops_at_once_and_sends_nothing(tmp_path, broker, hub_key, gate_factory, caplog):
    hub, _ = large_hub(tmp_path, broker, hub_key, SIZE)
    try:
        asking = gate_factory("g3", subscriptions=[pong_stream_topic(broker.site, "g3")])
        with caplog.at_level(logging.INFO, logger="hub.service"):
            asking.request_snapshot(REVOCATIONS)
            assert hub.service.wait_for(lambda stats: "gate g3 asked for a revocations snapshot" in caplog.text, TIMEOUT), "the request reached the builder"
    finally:
        started = time.monotonic()
        hub.stop()
    assert time.monotonic() - started < 5.0, "the hub waited for the build to finish"
    assert not hub.service.stats.recent_snapshots and "snapshot failed" not in caplog.text


def test_gates_beyond_the_waiting_limit_are_refused_and_ask_again_later(tmp_path, caplog):
    link = MqttLink(BrokerConfig(port=1), [], queue.Queue(), queue.Queue())  # never started: nothing is built here
    builder = SnapshotBuilder(lambda: SqliteSnapshotReader(tmp_path / "unused.db"), Publisher(link, SigningKey.generate(), "potala"), 2000, 0, time.time,
                              lambda build: None, max_waiting=2)
    assert builder.request("g1", REVOCATIONS) and builder.request("g2", REVOCATIONS)
    assert builder.request("g1", REVOCATIONS), "a gate already waiting is not counted twice"
    assert builder.request("g3", USED), "each stream has its own limit"
    assert not builder.request("g3", REVOCATIONS)
    assert "snapshot request of gate g3 for revocations refused: 2 gates already wait" in caplog.text


def test_a_database_without_the_hub_schema_is_refused_for_snapshots_with_one_line(tmp_path):
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(HubStoreError, match="other.db: cannot open for snapshots"):
        SqliteSnapshotReader(tmp_path / "other.db")
    with pytest.raises(HubStoreError, match="missing.db: cannot open for snapshots"):
        SqliteSnapshotReader(tmp_path / "missing.db")


class HeldReader(SqliteSnapshotReader):
    """The real snapshot connection, held at the start of each revocation read until the test lets it go."""

    def __init__(self, path: Path, entered: "queue.Queue[None]", release: threading.Event) -> None:
        super().__init__(path)
        self._entered, self._release = entered, release

    def revocation_snapshot(self, now_s: int):
        self._entered.put(None)
        assert self._release.wait(TIMEOUT), "the test never let the build read"
        return super().revocation_snapshot(now_s)


def test_an_unrevocation_overtaking_a_running_build_gives_its_gates_and_later_askers_the_next_build(tmp_path):
    """A set read before an un-revocation still holds the ticket, and deltas only add: a gate refreshing must not get it."""
    SqliteHubStore(tmp_path / "hub.db").close()
    entered: queue.Queue[None] = queue.Queue()
    release = threading.Event()
    builds: queue.Queue[SnapshotBuild] = queue.Queue()
    link = MqttLink(BrokerConfig(port=1), [], queue.Queue(), queue.Queue())  # never started: publishing goes nowhere
    builder = SnapshotBuilder(lambda: HeldReader(tmp_path / "hub.db", entered, release), Publisher(link, SigningKey.generate(), "potala"), 2000, 0,
                              time.time, builds.put)
    builder.start()
    try:
        builder.request("g1", REVOCATIONS)
        entered.get(timeout=TIMEOUT)  # g1's build is reading
        builder.overtaken(REVOCATIONS)  # what the worker does before it publishes refresh_revocations
        builder.request("g2", REVOCATIONS)  # the refreshing gate asks: it must not join the running build
        release.set()
        first, second = builds.get(timeout=TIMEOUT), builds.get(timeout=TIMEOUT)
    finally:
        builder.stop()
    assert (first.gates, second.gates) == (("g1",), ("g1", "g2"))
