"""Fixtures for hub tests: a real broker with the site ACL, a hub key, a running hub, gate clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.health import GateHealth
from gate.parts import GateParts, open_gate_parts
from gate.rules import GateRules
from gate.sync.client import HubSync
from gate.sync.settings import SyncSettings
from gate.validator import Validator
from hub.config import HubConfig
from hub.service import HubService
from lungta.config import load_hub_config
from transport.mqtt import BrokerConfig
from protocol.trust import TrustStore
from testkit.broker import Broker
from testkit.hub_config import write_hub_config
from testkit.sim_gate import SimGate

TIMEOUT = 10.0


@pytest.fixture
def hub_config_path(tmp_path: Path, broker: Broker, hub_key: SigningKey) -> Path:
    return write_hub_config(tmp_path / "hub", broker, hub_key)


@dataclass
class RunningHub:
    service: HubService
    config: HubConfig
    thread: threading.Thread
    stop_event: threading.Event

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "hub worker did not stop"


def start_hub(config_path: Path) -> RunningHub:
    config = load_hub_config(config_path)
    service = HubService.from_config(config)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="hub-worker", daemon=True)
    thread.start()
    assert service.link.subscribed.wait(TIMEOUT), "hub did not connect and subscribe"
    return RunningHub(service, config, thread, stop)


@pytest.fixture
def hub(hub_config_path: Path) -> Iterator[RunningHub]:
    running = start_hub(hub_config_path)
    yield running
    running.stop()


@pytest.fixture
def gate_factory(broker: Broker, hub_trust: TrustStore) -> Iterator[Callable[..., SimGate]]:
    """gate_factory(name, connect=True, **options) -> SimGate; disconnected at teardown."""
    made: list[SimGate] = []

    def _make(name: str, connect: bool = True, **options: object) -> SimGate:
        password = options.pop("password", None) or broker.password(name)
        gate = SimGate(broker.host, broker.port, broker.site, name, password, hub_trust, **options)
        made.append(gate)
        return gate.connect() if connect else gate

    yield _make
    for gate in made:
        gate.client.disconnect()
        gate.client.loop_stop()


class Gate:
    """One gate as `lungta gate run` builds it, minus scanners and turnstile: the parts, handed to the validator and the sync."""

    def __init__(self, tmp_path: Path, broker, name: str, ticket_trust: TrustStore, hub_trust: TrustStore) -> None:
        rules, health = GateRules(broker.site, gate_id=name), GateHealth()
        self.parts: GateParts = open_gate_parts(tmp_path / name, health, clock=GateClock(0))
        self.validator = Validator(rules, ticket_trust, self.parts.store, self.parts.revocations, self.parts.clock, self.parts.hub, health)
        settings = SyncSettings(trust=Path("unused"), broker=BrokerConfig(broker.host, broker.port, name, broker.password(name)), heartbeat_seconds=0.2, resend_after_seconds=2,
                                ping_seconds=0.2, hub_timeout_seconds=1.5, snapshot_retry_seconds=1)
        self.commands: list = []
        parts = self.parts
        self.sync = HubSync(settings, rules, parts.store, parts.revocations, parts.clock, parts.hub, hub_trust, self.commands.append)

    def start(self) -> "Gate":
        self.sync.start()
        assert self.sync.link.subscribed.wait(TIMEOUT), "gate did not connect and subscribe"
        return self

    def stop(self) -> None:
        self.sync.stop()

    def wait(self, predicate, what: str) -> None:
        assert self.sync.wait_for(lambda sync: predicate(self), TIMEOUT), what


@pytest.fixture
def gates(tmp_path, broker, hub_trust, trust):
    made: list[Gate] = []

    def make(name: str, start: bool = True) -> Gate:
        gate = Gate(tmp_path / "gates", broker, name, trust, hub_trust)
        made.append(gate)
        return gate.start() if start else gate

    yield make
    for gate in made:
        gate.stop()
        gate.parts.close()
