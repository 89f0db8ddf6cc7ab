"""The hub through a real Mosquitto: event ingest and backlog drain, revocation propagation.

Run: .venv/bin/python -m bench.bench_hub [--gates 100] [--events 3600] [--fanout 100,300]

1. Drain: 100 gates come back with 3,600 events each (360,000 admissions) and
   upload them the way a gate must (batches of 100 events, at most 1,000
   unacknowledged events per gate, each signed ack verified). Timed from the
   first publish to the last gate holding an ack for its last event: that is
   "stored durably and acknowledged", for synchronous=FULL and NORMAL.
2. Pre-queued: the same backlog already waits in the broker for the hub's
   persistent session when the hub starts: the hub process alone, ingest rate.
3. Propagation: N gate clients (in 3 processes) subscribed to the site's
   revocations; ``lungta hub revoke``'s store call records one revocation every
   200 ms; latency is from the commit (the envelope's ``at``) to the gate having
   verified the signature and applied it: the hub's poll, signing, the broker
   fan-out and the gate's check all included.

The gate clients in (1) and (2) subscribe to their ack stream only: the used
marks the hub relays for these admissions are published, but fanning 360,000
marks out to 100 Python clients on the same two cores would measure the
clients, not the hub.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

from nacl.signing import SigningKey

from lungta.config import load_hub_config
from hub.service import HubService
from hub.sqlite_store import SqliteHubStore
from protocol.hub_messages import RevocationEntry
from protocol.topics import REVOCATIONS, hub_topic
from protocol.trust import TrustedKey, TrustStore
from testkit.broker import Broker
from testkit.hub_config import write_hub_config
from testkit.sim_gate import SimGate

from .stats import machine, percentile

BATCH = 100
WINDOW = 1000
SITE = "potala"


def _hub_process(config_path: str, ready: multiprocessing.Event, done: multiprocessing.Event) -> None:
    service = HubService.from_config(load_hub_config(Path(config_path)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watcher = threading.Thread(target=lambda: (service.link.subscribed.wait(60), ready.set()), daemon=True)
    watcher.start()
    threading.Thread(target=lambda: (done.wait(), stop.set()), daemon=True).start()
    service.run(stop)


class HubProcess:
    def __init__(self, config_path: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.done = context.Event(), context.Event()
        self.process = context.Process(target=_hub_process, args=(str(config_path), self.ready, self.done))

    def start(self) -> "HubProcess":
        self.process.start()
        if not self.ready.wait(60):
            raise RuntimeError("hub did not connect within 60 s")
        return self

    def stop(self) -> None:
        self.done.set()
        self.process.join(30)


def _gates(broker: Broker, trust: TrustStore, names: list[str], changed: threading.Condition) -> list[SimGate]:
    gates = []
    for name in names:
        gate = SimGate(broker.host, broker.port, SITE, name, broker.password(name), trust, keep_messages=False, subscriptions=[hub_topic(SITE, f"ack/{name}")], changed=changed)
        gates.append(gate.connect())
    return gates


def _upload(gates: list[SimGate], per_gate: int, changed: threading.Condition, window: int) -> float:
    """Windowed upload as a gate does it; returns seconds until every gate's last event is acked."""
    backlog = {gate.gate: [gate.make_events(min(BATCH, per_gate - start)) for start in range(0, per_gate, BATCH)] for gate in gates}
    sent = {gate.gate: 0 for gate in gates}
    start = time.perf_counter()
    acked = lambda: sum(gate.view.acked_seq for gate in gates)  # noqa: E731
    while True:
        before = acked()
        for gate in gates:  # publish without holding ``changed``: paho calls on_publish under its own lock
            batches = backlog[gate.gate]
            while batches and sent[gate.gate] - gate.view.acked_seq < window:
                batch = batches.pop(0)
                gate.publish_events(batch)
                sent[gate.gate] += len(batch)
        if all(gate.view.acked_seq >= per_gate for gate in gates):
            return time.perf_counter() - start
        with changed:
            if not changed.wait_for(lambda: acked() != before, 120):
                raise TimeoutError(f"no ack progress for 120 s: {acked()} acked")


def bench_drain(root: Path, key: SigningKey, trust: TrustStore, gate_count: int, per_gate: int, synchronous: str, prequeued: bool) -> float:
    names = [f"g{index:03d}" for index in range(gate_count)]
    broker = Broker(root / f"broker-{synchronous}-{prequeued}", SITE, names, max_queued=100_000, max_inflight=1000)
    broker.start()
    config = write_hub_config(root / f"hub-{synchronous}-{prequeued}", broker, key, synchronous=synchronous)
    changed = threading.Condition()
    try:
        hub = HubProcess(config).start()
        gates = _gates(broker, trust, names, changed)
        if not prequeued:
            seconds = _upload(gates, per_gate, changed, WINDOW)
        else:
            hub.stop()  # its persistent session (and subscription) stays on the broker
            for gate in gates:
                for start in range(0, per_gate, BATCH):
                    gate.publish_events(gate.make_events(min(BATCH, per_gate - start)))
            with changed:
                changed.wait_for(lambda: all(len(g.view.pubacks) >= per_gate // BATCH for g in gates), 300)
            hub = HubProcess(config)
            start = time.perf_counter()
            hub.start()
            with changed:
                if not changed.wait_for(lambda: all(g.view.acked_seq >= per_gate for g in gates), 600):
                    raise TimeoutError("pre-queued backlog not drained in 600 s")
            seconds = time.perf_counter() - start
        hub.stop()
        for gate in gates:
            gate.disconnect()
        store = SqliteHubStore(config.parent / "hub.db")
        stored = store.event_count()
        store.close()
        if stored != gate_count * per_gate:
            raise AssertionError(f"{stored} events stored, expected {gate_count * per_gate}")
        return seconds
    finally:
        broker.stop()


def _fanout_worker(host: str, port: int, names: list[str], passwords: list[str], trust_key: bytes, messages: int, ready, results, stop) -> None:
    from nacl.signing import VerifyKey

    trust = TrustStore([TrustedKey("hub", VerifyKey(trust_key))])
    changed = threading.Condition()
    gates = [SimGate(host, port, SITE, name, password, trust, keep_messages=False, subscriptions=[hub_topic(SITE, REVOCATIONS)], changed=changed).connect(timeout=60) for name, password in zip(names, passwords)]
    ready.put(len(gates))
    received = lambda: sum(stream == REVOCATIONS for gate in gates for stream, *_ in gate.view.receipts)  # noqa: E731
    with changed:  # every gate has every revocation, or the run was stopped (checked each second)
        while received() < messages * len(gates) and not stop.is_set():
            changed.wait_for(lambda: received() >= messages * len(gates), 1.0)
    latencies = [received * 1000 - at_ms for gate in gates for stream, _, at_ms, received in gate.view.receipts if stream == REVOCATIONS]
    refused = sum(len(gate.view.refused) for gate in gates)
    for gate in gates:
        gate.disconnect()
    results.put((latencies, refused))


def bench_fanout(root: Path, key: SigningKey, gate_count: int, messages: int, processes: int = 3) -> tuple[list[float], int]:
    names = [f"f{index:03d}" for index in range(gate_count)]
    broker = Broker(root / f"broker-fanout-{gate_count}", SITE, names, max_queued=1000, max_inflight=100)
    broker.start()
    config = write_hub_config(root / f"hub-fanout-{gate_count}", broker, key)
    context = multiprocessing.get_context("spawn")
    ready, results, stop = context.Queue(), context.Queue(), context.Event()
    hub = HubProcess(config).start()
    workers = []
    try:
        for index in range(processes):
            part = names[index::processes]
            worker = context.Process(target=_fanout_worker, args=(broker.host, broker.port, part, [broker.password(n) for n in part], bytes(key.verify_key), messages, ready, results, stop))
            worker.start()
            workers.append(worker)
        connected = sum(ready.get(timeout=120) for _ in workers)
        assert connected == gate_count
        store = SqliteHubStore(config.parent / "hub.db")
        for index in range(messages):
            store.add_revocations([RevocationEntry(os.urandom(12), int(time.time()) + 86_400)], "bench", int(time.time() * 1000), 2000)
            time.sleep(0.2)  # pacing, not synchronisation: the offered load is five revocations a second
        store.close()
        latencies, refused = [], 0
        for _ in workers:
            part, bad = results.get(timeout=120)
            latencies.extend(part)
            refused += bad
        return latencies, refused
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
        hub.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=100)
    parser.add_argument("--events", type=int, default=3600, help="events per gate")
    parser.add_argument("--fanout", default="100,300", help="gate counts for the propagation bench")
    parser.add_argument("--revocations", type=int, default=50)
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    key = SigningKey.generate()
    trust = TrustStore([TrustedKey("hub", key.verify_key)])
    total = args.gates * args.events
    print(f"# bench_hub: {machine()}; mosquitto + hub + simulated gates on the same machine")
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as directory:
        root = Path(directory)
        if not args.skip_drain:
            for synchronous in ("full", "normal"):
                seconds = bench_drain(root, key, trust, args.gates, args.events, synchronous, prequeued=False)
                print(f"drain {total:,} events from {args.gates} gates (windowed upload, acked), synchronous={synchronous:6}: {seconds:6.1f} s  {total / seconds:8,.0f} events/s")
            seconds = bench_drain(root, key, trust, args.gates, args.events, "full", prequeued=True)
            print(f"drain {total:,} events pre-queued in the broker, hub process alone, synchronous=full  : {seconds:6.1f} s  {total / seconds:8,.0f} events/s")
        for count in (int(n) for n in args.fanout.split(",") if n):
            latencies, refused = bench_fanout(root, key, count, args.revocations)
            expected = count * args.revocations
            print(
                f"revocation to {count:3} gates ({args.revocations} revocations, {len(latencies):,}/{expected:,} receipts, {refused} refused): "
                f"p50 {statistics.median(latencies):6.1f} ms  p99 {percentile(latencies, 0.99):6.1f} ms  max {max(latencies):6.1f} ms"
            )


if __name__ == "__main__":
    main()
