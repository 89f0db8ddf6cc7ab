"""One gate floods the hub; how long do the other gates' used marks take meanwhile?

Run: .venv/bin/python -m bench.bench_flood [--flood 100000] [--admissions 200]

A real Mosquitto (the site ACL, client id bound to the login), the hub in its
own process with issuer trust (it verifies every admission's ticket), and
three simulated gates: ``flood`` publishes ``--flood`` forged admissions
(batches of 100, as fast as paho takes them, no window: a compromised gate),
``east`` admits a genuine ticket every 50 ms, ``west`` receives the used
marks. Latency is from east's publish to west holding the verified mark.
Measured three ways in one run: no flood (the bare limit of this machine),
the flood with the hub's per-gate rate limit (hub.toml ``gate_event_rate``,
default 5,000 events/s, burst 10,000), and the flood with the limit raised
out of the way (what the hub did before it had one).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey

from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket
from protocol.gate_messages import encode_events
from protocol.topics import gate_topic, hub_topic
from protocol.trust import TrustedKey, TrustStore
from testkit.broker import Broker
from testkit.tickets import make_claims
from testkit.hub_config import write_hub_config
from testkit.sim_gate import SimGate

from .bench_hub import HubProcess
from .stats import machine, percentile

SITE = "potala"
BATCH = 100


def _flood(host: str, port: int, password: str, hub_public: bytes, total: int, done) -> None:
    """The flooding gate, in its own process so its encoding does not slow the measuring gates."""
    from nacl.signing import VerifyKey

    gate = SimGate(host, port, SITE, "flood", password, TrustStore([TrustedKey("hub", VerifyKey(hub_public))]), keep_messages=False,
                   subscriptions=[hub_topic(SITE, "ack/flood")]).connect()
    payloads = [encode_events(gate.make_events(min(BATCH, total - start))) for start in range(0, total, BATCH)]  # forged: usage, no ticket
    for payload in payloads:
        gate.publish_raw(gate_topic(SITE, "flood", "events"), payload)
    done.wait(600)
    gate.disconnect()


def _admit(east: SimGate, west: SimGate, issuer: SigningKey, count: int) -> list[float]:
    """Genuine admissions at east, one per 50 ms; ms from publish to west holding the mark."""
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    for _ in range(count):
        now = int(time.time())
        claims = make_claims(not_before=now - 60, expires=now + 3600)
        text = issue_ticket(claims, issuer)
        (event,) = east.make_events(1, ticket_ids=[claims.ticket_id], data={"usage": {"zone": "main", "day": time.strftime("%Y-%m-%d"), "entries": 1, "exits": 0}, "ticket": text})
        sent[claims.ticket_id] = time.perf_counter()
        east.publish_events([event])
        deadline = time.perf_counter() + 0.05
        with west.changed:
            west.changed.wait_for(lambda: claims.ticket_id in {mark.ticket_id for mark in west.view.used[-20:]}, 30)
            if claims.ticket_id in {mark.ticket_id for mark in west.view.used[-20:]}:
                latencies.append((time.perf_counter() - sent[claims.ticket_id]) * 1000)
        time.sleep(max(0.0, deadline - time.perf_counter()))  # the pace of a busy gate, not a synchronisation
    return latencies


def run(root: Path, issuer: SigningKey, flood: int, admissions: int, rate: float | None, burst: int | None = None,
        inflight: int = 100) -> tuple[list[float], float]:
    broker = Broker(root / "broker", gates=["flood", "east", "west"], max_inflight=inflight)
    broker.start()
    hub_key = SigningKey.generate()
    hub_dir = root / "hub"
    if not (hub_dir / "issuers" / "sales.pub").exists():
        write_key_pair(issuer, hub_dir / "issuers", "sales")
    options: dict = {"trust": "issuers/sales.pub"}
    if rate is not None:
        options.update(gate_event_rate=rate, gate_event_burst=burst or int(rate * 2))
    elif burst is not None:
        options.update(gate_event_burst=burst)
    config = write_hub_config(hub_dir, broker, hub_key, **options)
    hub = HubProcess(config).start()
    trust = TrustStore([TrustedKey("hub", hub_key.verify_key)])
    try:
        east = SimGate(broker.host, broker.port, SITE, "east", broker.password("east"), trust, keep_messages=False, subscriptions=[hub_topic(SITE, "ack/east")]).connect()
        west = SimGate(broker.host, broker.port, SITE, "west", broker.password("west"), trust, keep_messages=False, subscriptions=[hub_topic(SITE, "used")]).connect()
        context = multiprocessing.get_context("spawn")
        done = context.Event()
        flooding = context.Process(target=_flood, args=(broker.host, broker.port, broker.password("flood"), bytes(hub_key.verify_key), flood, done))
        start = time.perf_counter()
        if flood:
            flooding.start()
        latencies = _admit(east, west, issuer, admissions)
        done.set()
        if flood:
            flooding.join(60)
        elapsed = time.perf_counter() - start
        for gate in (east, west):
            gate.disconnect()
        return latencies, elapsed
    finally:
        hub.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=100_000)
    parser.add_argument("--admissions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=None, help="hub.toml gate_event_rate for the limited case (burst: twice that); default: the hub's default")
    parser.add_argument("--burst", type=int, default=None, help="hub.toml gate_event_burst for the limited case")
    parser.add_argument("--inflight", type=int, default=100, help="the broker's max_inflight_messages (deploy/mosquitto: 100)")
    parser.add_argument("--cases", default="bare,limited,unlimited", help="which of bare, limited, unlimited to run")
    args = parser.parse_args()
    issuer = SigningKey.generate()
    print(f"# bench_flood: {machine()}; mosquitto (max_inflight_messages {args.inflight}) + hub process + 3 simulated gates on the same machine")
    cases = [("bare", "no flood (bare limit)", 0, None, None),
             ("limited", f"{args.flood:,}-event flood, per-gate limit {args.rate or 'default'}/{args.burst or 'default'}", args.flood, args.rate, args.burst),
             ("unlimited", f"{args.flood:,}-event flood, limit out of the way", args.flood, 10_000_000.0, None)]
    for name, label, flood, rate, burst in cases:
        if name not in args.cases.split(","):
            continue
        with tempfile.TemporaryDirectory(prefix="bench-flood-") as directory:
            latencies, elapsed = run(Path(directory), issuer, flood, args.admissions, rate, burst, args.inflight)
        print(f"{label:48}: {len(latencies)}/{args.admissions} marks  p50 {statistics.median(latencies):7.1f} ms  p99 {percentile(latencies, 0.99):7.1f} ms"
              f"  max {max(latencies):7.1f} ms  ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
