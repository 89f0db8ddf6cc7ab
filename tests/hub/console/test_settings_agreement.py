"""The hub reports gates whose heartbeat interval, time zone or trusted hub key differ from its own.

A real broker, a real hub with its console (heartbeat_interval_s = 1, zone
Asia/Shanghai) and real gate sync clients: each gate sends its own settings
in every birth and heartbeat; the hub logs each difference once, shows it in
``lungta hub gates`` and ``/api/v1/gates/{id}``, and raises an alert.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.rules import GateRules
from gate.sync.client import HubSync
from gate.sync.settings import SyncSettings
from gate.health import GateHealth
from gate.parts import open_gate_parts
from hub.console.roles import Role
from transport.mqtt import BrokerConfig
from protocol.trust import TrustedKey, TrustStore

TIMEOUT = 15.0


@pytest.fixture
def start_gate(tmp_path: Path, broker) -> Iterator:
    """start_gate(name, heartbeat_s, zone, hub_trust) -> a running HubSync with those settings."""
    running = []

    def start(name: str, heartbeat_s: float, zone: str, hub_trust: TrustStore) -> HubSync:
        parts = open_gate_parts(tmp_path / "gates" / name, GateHealth(), clock=GateClock(0))
        rules = GateRules(broker.site, gate_id=name, timezone=ZoneInfo(zone))
        settings = SyncSettings(trust=Path("unused"), broker=BrokerConfig(broker.host, broker.port, name, broker.password(name)), heartbeat_seconds=heartbeat_s)
        sync = HubSync(settings, rules, parts.store, parts.revocations, parts.clock, parts.hub, hub_trust)
        sync.start()
        running.append((sync, parts))
        assert sync.link.subscribed.wait(TIMEOUT), f"{name} did not connect"
        return sync

    yield start
    for sync, parts in running:
        sync.stop()
        parts.close()


def _warnings(caplog: pytest.LogCaptureFixture, gate: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "hub.agreement" and record.levelno == logging.WARNING and f"gate={gate} " in record.getMessage()]


def test_a_gate_with_another_heartbeat_interval_time_zone_or_hub_key_is_reported_and_a_matching_one_is_not(console, start_gate, hub_trust, caplog):
    caplog.set_level(logging.INFO, logger="hub.agreement")
    stranger = TrustStore([TrustedKey("another hub", SigningKey.generate().verify_key)])
    start_gate("g1", 1, "Asia/Shanghai", hub_trust)
    start_gate("g2", 30, "Asia/Shanghai", hub_trust)
    start_gate("g3", 1, "Europe/Berlin", stranger)

    def raised(data: dict) -> set[tuple[str, str]]:
        return {(alert["kind"], alert["gate"]) for alert in data["alerts"]}

    data = console.wait_snapshot(lambda data: {("settings_mismatch", "g2"), ("settings_mismatch", "g3")} <= raised(data), TIMEOUT)
    assert ("settings_mismatch", "g1") not in raised(data), "a gate whose settings match raises nothing"

    viewer = console.client(Role.VIEWER)
    assert viewer.get("/api/v1/gates/g1").json()["settings_mismatch"] == []
    assert viewer.get("/api/v1/gates/g2").json()["settings_mismatch"] == [{"key": "heartbeat_s", "gate_value": "30", "hub_value": "1"}]
    g3 = viewer.get("/api/v1/gates/g3").json()["settings_mismatch"]
    assert [item["key"] for item in g3] == ["timezone", "hub_key"]
    assert g3[0]["gate_value"] == "Europe/Berlin" and g3[0]["hub_value"] == "Asia/Shanghai"

    service = console.hub.service
    with service.progress:
        reports = service.stats.reports
    assert service.wait_for(lambda stats: stats.reports >= reports + 6, TIMEOUT), "g1 and g3 beat every second"
    assert _warnings(caplog, "g2") == ["gate settings disagree with the hub's: gate=g2 key=heartbeat_s gate_value=30 hub_value=1"]
    assert len(_warnings(caplog, "g3")) == 2, "one line per setting that differs, not one per heartbeat"
    assert "gate=g3 key=timezone gate_value=Europe/Berlin hub_value=Asia/Shanghai" in _warnings(caplog, "g3")[0]
    assert _warnings(caplog, "g1") == []

    shown = subprocess.run([sys.executable, "-m", "lungta", "hub", "gates", "--json", "--config", str(console.config_path)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    rows = {row["gate"]: row for row in map(json.loads, shown.stdout.splitlines())}  # one JSON object per gate
    assert rows["g1"]["settings"] == "ok"
    assert rows["g2"]["settings"] == "heartbeat_s 30 (hub 1)" and "settings differ" in rows["g2"]["alert"]
    assert rows["g3"]["settings"].startswith("timezone Europe/Berlin (hub Asia/Shanghai); hub_key ")
