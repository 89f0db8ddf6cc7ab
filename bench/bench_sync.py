"""The double-entry window: an admission at one gate until every other gate knows the ticket is used.

Run: .venv/bin/python -m bench.bench_sync [--gates 10] [--admissions 100]

Real parts only: Mosquitto with the site ACL, the hub (its own thread), and N
gates as ``lungta gate run`` builds them (validator on SQLite state, the
HubSync client), all on this machine. For each admission at a random gate the
clock runs from the moment the scan's decision is durably recorded to the
moment each other gate has applied the used mark (the gate's sync worker
wakes the waiter after applying). That path is: the gate's outbox upload,
the broker, the hub's batch commit, the hub signing the mark, the broker
fan-out, and each gate's verify-and-commit.

Bare limit in the same run: a QoS 1 publish from one plain paho client to
another through the same broker (publish to on_message), the transport floor
that the two hops (gate -> hub -> gates) pay twice.
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from gate.clock import GateClock
from gate.health import GateHealth
from gate.parts import GateParts, open_gate_parts
from gate.rules import GateRules
from gate.sync.client import HubSync
from gate.sync.settings import SyncSettings
from gate.validator import Validator
from lungta.config import load_hub_config
from testkit.broker import Broker
from hub.service import HubService
from protocol.claims import TicketClaims
from protocol.keys import write_key_pair
from transport.mqtt import BrokerConfig
from protocol.ticket import issue_ticket, new_ticket_id
from protocol.trust import TrustedKey, TrustStore

from .stats import machine, percentile

SITE = "potala"
WAIT = 30.0


def _hub(root: Path, broker: Broker, key: SigningKey) -> tuple[HubService, threading.Event, threading.Thread]:
    write_key_pair(key, root / "keys", "hub")
    (root / "hub.toml").write_text(
        f'[hub]\nsite = "{SITE}"\nkey = "keys/hub.key"\ndatabase = "hub.db"\n\n'
        f'[broker]\nport = {broker.port}\nusername = "{broker.hub_user}"\npassword = "{broker.password(broker.hub_user)}"\n', encoding="utf-8")
    service = HubService.from_config(load_hub_config(root / "hub.toml"))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="hub", daemon=True)
    thread.start()
    if not service.link.subscribed.wait(WAIT):
        raise SystemExit("hub did not connect")
    return service, stop, thread


def _bare_round_trips(broker: Broker, count: int) -> list[float]:
    """QoS 1 publish -> on_message between two clients of the same broker (users g0 and g1)."""
    received: queue.Queue = queue.Queue()
    receiver = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-rx", protocol=mqtt.MQTTv5)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-tx", protocol=mqtt.MQTTv5)
    receiver.username_pw_set(broker.hub_user, broker.password(broker.hub_user))
    sender.username_pw_set("g0", broker.password("g0"))
    subscribed = threading.Event()
    receiver.on_message = lambda client, userdata, message: received.put(time.perf_counter())
    receiver.on_subscribe = lambda *args: subscribed.set()
    for client in (receiver, sender):
        client.connect(broker.host, broker.port)
        client.loop_start()
    receiver.subscribe(f"lungta/{SITE}/gate/g0/heartbeat", qos=1)
    subscribed.wait(WAIT)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        sender.publish(f"lungta/{SITE}/gate/g0/heartbeat", b"\xa0", qos=1)
        samples.append(received.get(timeout=WAIT) - start)
    for client in (receiver, sender):
        client.disconnect()
        client.loop_stop()
    return samples


def run(gate_count: int, admissions: int) -> None:
    issuer, hub_key = SigningKey.generate(), SigningKey.generate()
    tickets, hub_trust = TrustStore([TrustedKey("sales", issuer.verify_key)]), TrustStore([TrustedKey("hub", hub_key.verify_key)])
    names = [f"g{index}" for index in range(gate_count)]
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker", SITE, names)
        broker.start()
        # before the hub and the gates connect: the client id is the login, so these two
        # clients (the hub's and g0's logins) would otherwise take over their sessions
        bare = _bare_round_trips(broker, admissions)
        service, stop, thread = _hub(root / "hub", broker, hub_key)
        gates: list[HubSync] = []
        validators: list[Validator] = []
        parts_of: list[GateParts] = []
        try:
            for name in names:
                rules, health = GateRules(SITE, gate_id=name), GateHealth()
                parts = open_gate_parts(root / name, health, clock=GateClock(0))
                parts_of.append(parts)
                validators.append(Validator(rules, tickets, parts.store, parts.revocations, parts.clock, parts.hub, health))
                settings = SyncSettings(trust=root, broker=BrokerConfig(broker.host, broker.port, name, broker.password(name)), heartbeat_seconds=30)
                sync = HubSync(settings, rules, parts.store, parts.revocations, parts.clock, parts.hub, hub_trust)
                sync.start()
                sync.link.subscribed.wait(WAIT)
                gates.append(sync)
            windows, slowest = [], []
            rng = random.Random(7)
            for _ in range(admissions):
                now = int(time.time())
                text = issue_ticket(TicketClaims(ticket_id=new_ticket_id(), site=SITE, not_before=now - 60, expires=now + 3600, issued_at=now - 60), issuer)
                at = rng.randrange(gate_count)
                start = time.perf_counter()
                result = validators[at].scan(text)
                ticket_id = result.decision.ticket.ticket_id
                arrivals = []
                for index, sync in enumerate(gates):
                    if index != at:
                        if not sync.wait_for(lambda s, store=parts_of[index].store: store.has_usage(ticket_id), WAIT):
                            raise SystemExit(f"gate {sync.gate} never learned of the admission at {gates[at].gate}")
                        arrivals.append(time.perf_counter() - start)
                windows.extend(arrivals)
                slowest.append(max(arrivals))
        finally:
            for sync in gates:
                sync.stop()
            for parts in parts_of:
                parts.close()
            stop.set()
            thread.join(WAIT)
            broker.stop()
    ms = 1000
    print(f"# bench_sync: {machine()}; mosquitto + hub + {gate_count} gates (HubSync) on the same machine")
    print(f"bare QoS 1 publish -> receive, one hop          : p50 {statistics.median(bare) * ms:6.1f} ms  p99 {percentile(bare, 0.99) * ms:6.1f} ms")
    print(f"admission -> used mark applied at another gate  : p50 {statistics.median(windows) * ms:6.1f} ms  p99 {percentile(windows, 0.99) * ms:6.1f} ms  "
          f"({len(windows)} gate receipts of {admissions} admissions)")
    print(f"admission -> every other gate has it (window)   : p50 {statistics.median(slowest) * ms:6.1f} ms  p99 {percentile(slowest, 0.99) * ms:6.1f} ms  max {max(slowest) * ms:6.1f} ms")
    print(f"ratio p50 window / bare hop                      : {statistics.median(slowest) / statistics.median(bare):.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=10)
    parser.add_argument("--admissions", type=int, default=100)
    args = parser.parse_args(argv)
    run(args.gates, args.admissions)


if __name__ == "__main__":
    main()
