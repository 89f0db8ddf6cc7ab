"""Filling a revocation-stream gap: a full snapshot against the missing deltas, end to end.

Run: .venv/bin/python -m bench.bench_gap_fill [--sizes 10000,1000000] [--missing 10000]

A gate that finds a gap in its revocation stream (issue 11, item 4) asks the
hub for a full snapshot of the unexpired revocations, not for the missing
range. Does that matter? Real parts, as bench_liveness: Mosquitto, the hub
(``HubService`` in a thread of this process) holding N revocations, and a
gate sync client (``HubSync`` on a gate's real state, gate.toml
defaults). Measured per N:

- **full snapshot**: a new gate state asks for it (the same request a gap
  makes); time from ``HubSync.start`` until the revocation snapshot is
  installed: the hub's query, chunking and signing, the broker, the gate's
  verification, assembly and atomic install. Bare limit in the same run: the
  same with N = 0 (connect, first pong, request, an empty snapshot).
  Meanwhile a second gate, in step, watches its own "hub online": while
  the hub built snapshots on its single worker, its pongs to every other
  gate waited, longer than the pong timeout (3.5 s) at 1 M, and every gate
  of the site fell back to the offline policy; the snapshot builder
  (hub/snapshot_builder.py) now builds them beside the worker. Also shown:
  the hub's part (reading and chunking; signing and publishing).
- **missing range as deltas**: the gate is in step; the hub gets
  ``--missing`` new revocations (a) in deltas of ``snapshot_chunk`` (2,000)
  ids, which is what a range fill would send, (b) one id per delta, as one
  ``lungta hub revoke`` per ticket publishes them; time from the commit at
  the hub until the gate has applied the head seq.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.health import GateHealth
from gate.parts import GateParts, open_gate_parts
from gate.rules import GateRules
from gate.sync.client import HubSync
from gate.sync.settings import SyncSettings
from hub.service import HubService
from hub.sqlite_store import SqliteHubStore
from lungta.config import load_hub_config
from protocol.hub_messages import RevocationEntry
from transport.mqtt import BrokerConfig
from protocol.topics import REVOCATIONS
from protocol.trust import TrustedKey, TrustStore
from testkit.broker import Broker
from testkit.hub_config import write_hub_config

from .stats import machine, seconds_until

SITE = "potala"
CHUNK = 2000  # hub.toml snapshot_chunk default: also the delta size a range fill would use
LIMIT_S = 300.0
POLL_S = 0.005  # resolution of the timings


def _entries(count: int) -> list[RevocationEntry]:
    expires = int(time.time()) + 30 * 86_400
    return [RevocationEntry(os.urandom(16), expires) for _ in range(count)]


def _revoke(database: Path, entries: list[RevocationEntry], per_delta: int, published: bool) -> int:
    """Add revocations at the hub as ``lungta hub revoke`` does (another connection; the running hub publishes
    the deltas), ``per_delta`` ids per delta; ``published``: mark them sent (history the gate never saw). The head seq."""
    store = SqliteHubStore(database, synchronous="normal")
    try:
        rows = store.add_revocations(entries, "bench", int(time.time() * 1000), per_delta)
        if published:
            store.mark_published([row.row_id for row in rows])
        return rows[-1].seq if rows else store.last_seq(REVOCATIONS)
    finally:
        store.close()


class Bench:
    """A broker, a hub holding ``size`` revocations the gate never saw, and one gate not started yet."""

    def __init__(self, root: Path, size: int) -> None:
        self.broker = Broker(root / "broker", gates=["g1", "g2"])
        self.broker.start()
        hub_key = SigningKey.generate()
        config = write_hub_config(root / "hub", self.broker, hub_key)
        self.config = load_hub_config(config)
        self.head = _revoke(self.config.database, _entries(size), CHUNK, published=True)
        self.service = HubService.from_config(self.config)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.service.link.subscribed.wait(30)
        self.hub_trust = TrustStore([TrustedKey("hub", hub_key.verify_key)])
        self.witness, self.witness_sync = self._gate(root, "g2")
        self.witness_sync.start()  # in step before the bench's gate asks: it shows what the rest of the site sees
        seconds_until(lambda: self.witness.hub.online, 60, POLL_S)
        self.parts, self.sync = self._gate(root, "g1")

    def _gate(self, root: Path, name: str) -> tuple[GateParts, HubSync]:
        """A gate's state and its sync client with gate.toml defaults (hub timeout 3.5 s)."""
        parts = open_gate_parts(root / name, GateHealth(), clock=GateClock(0))
        settings = SyncSettings(trust=Path("unused"), broker=BrokerConfig(self.broker.host, self.broker.port, name, self.broker.password(name)))
        return parts, HubSync(settings, GateRules(SITE, gate_id=name), parts.store, parts.revocations, parts.clock, parts.hub, self.hub_trust)

    def applied(self) -> int:
        return self.sync.inbox.tracker.last(REVOCATIONS)

    def full_snapshot(self) -> tuple[float, float, float, float]:
        """(seconds until installed, seconds the witness gate was not "hub online" meanwhile, the hub's build and send seconds)."""
        offline = 0.0
        last = time.monotonic()

        def installed() -> bool:
            nonlocal offline, last
            now = time.monotonic()
            offline += 0.0 if self.witness.hub.online else now - last
            last = now
            return REVOCATIONS in self.sync.inbox.installed and self.applied() >= self.head

        self.sync.start()
        seconds = seconds_until(installed, LIMIT_S, POLL_S)
        with self.service.progress:
            build = next(build for build in self.service.stats.recent_snapshots if build.stream == REVOCATIONS and "g1" in build.gates)
        return seconds, offline, build.build_s, build.send_s

    def missing_range(self, count: int, per_delta: int) -> float:
        seconds_until(lambda: self.sync.caught_up, 60, POLL_S)
        self.head = _revoke(self.config.database, _entries(count), per_delta, published=False)
        return seconds_until(lambda: self.applied() >= self.head, LIMIT_S, POLL_S)  # from the commit at the hub, as a range fill would start from stored rows

    def burst(self, count: int) -> tuple[float, int]:
        """``count`` one-ticket revocations, one call each (a ticket office refunding order after order), the gate in step:
        (seconds from the first commit until the gate applied the last, deltas the hub made of them)."""
        seconds_until(lambda: self.sync.caught_up, 60, POLL_S)
        first = self.head
        store = SqliteHubStore(self.config.database, synchronous="normal")
        try:
            start = time.monotonic()
            for entry in _entries(count):
                store.add_revocations([entry], "bench", int(time.time() * 1000), CHUNK)
            self.head = store.last_seq(REVOCATIONS)
        finally:
            store.close()
        seconds_until(lambda: self.applied() >= self.head, LIMIT_S, POLL_S)
        return time.monotonic() - start, self.head - first

    def close(self) -> None:
        self.sync.stop(timeout=2)
        self.witness_sync.stop(timeout=2)
        self.witness.close()
        self.stop.set()
        self.thread.join(30)
        self.parts.close()
        self.broker.stop()


def one_size(size: int, missing: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-gap-") as directory:
        bench = Bench(Path(directory), size)
        try:
            figures = dict(zip(("snapshot", "witness_offline", "build", "send"), bench.full_snapshot()))
            figures["range"] = bench.missing_range(missing, CHUNK)
            figures["singles"] = bench.missing_range(missing, 1)
            figures["burst"], figures["burst_deltas"] = bench.burst(missing)
            return figures
        finally:
            bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--missing", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the gate's and hub's own progress lines are not the bench's output
    sizes = [int(text) for text in args.sizes.split(",")]
    print(f"# bench_gap_fill: {machine()}; snapshot_chunk {CHUNK}; {args.missing:,} revocations missing")
    bare = one_size(0, args.missing)
    print(f"{'bare (hub holds 0)':28}: full snapshot {bare['snapshot']:6.2f} s")
    for size in sizes:
        figures = one_size(size, args.missing)
        print(f"{f'hub holds {size:,}':28}: full snapshot {figures['snapshot']:6.2f} s (bare + {figures['snapshot'] - bare['snapshot']:.2f} s; "
              f"hub build {figures['build']:.2f} s, send {figures['send']:.2f} s), another gate offline meanwhile {figures['witness_offline']:.2f} s; "
              f"missing {args.missing:,} as deltas of {CHUNK}: {figures['range']:.2f} s, one per delta: {figures['singles']:.2f} s; "
              f"{args.missing:,} one-ticket calls: {figures['burst']:.2f} s in {figures['burst_deltas']:.0f} deltas")


if __name__ == "__main__":
    main()
