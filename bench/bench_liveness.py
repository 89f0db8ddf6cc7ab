"""How soon does a gate notice that the hub is gone: a dead hub, a stalled broker?

Run: .venv/bin/python -m bench.bench_liveness [--rounds 5]

A real gate sync client (validator + HubSync on real state, the defaults of
gate.toml: a ping every 1 s, offline after 3.5 s without an answer) and the
real hub in this process, through a real Mosquitto. Each round waits until
the gate is "hub online", then either stops the hub (the broker stays up, so
broker liveness would notice nothing) or freezes the broker with SIGSTOP (a
silent cut: no TCP reset, the MQTT keepalive alone would take up to 1.5 x 30
s), and measures the time until the hub link state (``HubLinkState.online``) turns false.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import threading
from pathlib import Path

from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.health import GateHealth
from gate.parts import open_gate_parts
from gate.rules import GateRules
from gate.sync.client import HubSync
from gate.sync.settings import SyncSettings
from hub.service import HubService
from lungta.config import load_hub_config
from transport.mqtt import BrokerConfig
from protocol.trust import TrustedKey, TrustStore
from testkit.broker import Broker
from testkit.hub_config import write_hub_config

from .stats import machine, seconds_until

SITE = "potala"


def _start_hub(config: Path) -> tuple[HubService, threading.Event, threading.Thread]:
    service = HubService.from_config(load_hub_config(config))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    service.link.subscribed.wait(30)
    return service, stop, thread


def one_round(root: Path, mode: str) -> float:
    broker = Broker(root / "broker", gates=["g1"])
    broker.start()
    hub_key = SigningKey.generate()
    config = write_hub_config(root / "hub", broker, hub_key)
    service, stop, thread = _start_hub(config)
    parts = open_gate_parts(root / "gate", GateHealth(), clock=GateClock(0))
    settings = SyncSettings(trust=Path("unused"), broker=BrokerConfig(broker.host, broker.port, "g1", broker.password("g1")))
    sync = HubSync(settings, GateRules(SITE, gate_id="g1"), parts.store, parts.revocations, parts.clock, parts.hub, TrustStore([TrustedKey("hub", hub_key.verify_key)]))
    sync.start()
    try:
        seconds_until(lambda: parts.hub.online, 60)
        if mode == "hub stopped":
            stop.set()
            thread.join(30)
        else:
            broker.process.send_signal(signal.SIGSTOP)
        return seconds_until(lambda: not parts.hub.online, 60)
    finally:
        if mode != "hub stopped":
            broker.process.send_signal(signal.SIGCONT)
            stop.set()
            thread.join(30)
        sync.stop(timeout=2)
        parts.close()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"# bench_liveness: {machine()}; ping 1 s, hub_timeout 3.5 s (gate.toml defaults)")
    for mode in ("hub stopped", "broker frozen (SIGSTOP)"):
        times = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="bench-live-") as directory:
                times.append(one_round(Path(directory), mode))
        print(f"{mode:26}: noticed after median {statistics.median(times):4.2f} s, max {max(times):4.2f} s ({args.rounds} rounds)")


if __name__ == "__main__":
    main()
