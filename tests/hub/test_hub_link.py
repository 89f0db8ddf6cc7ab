"""`lungta hub run` with its broker down at start: the cause in one line, then connected once the broker is up."""

from __future__ import annotations

import sys

from testkit.broker import Broker
from testkit.faults.site import Process
from testkit.waiting import wait_until
from testkit.hub_config import write_hub_config

TIMEOUT = 60.0


def test_hub_run_names_a_stopped_broker_once_and_connects_when_it_starts(tmp_path, hub_key):
    broker = Broker(tmp_path / "broker", gates=["g1"])  # configured, not started: the hub box booted first
    config = write_hub_config(tmp_path / "hub", broker, hub_key)
    hub = Process("hub", [sys.executable, "-m", "lungta", "hub", "run", "--config", str(config)], config.parent / "hub.log", config.parent)
    try:
        hub.start()
        wait_until(lambda: "cause=refused" in hub.text(), "the hub names why it cannot connect", TIMEOUT)
        broker.start()
        wait_until(lambda: "subscribed to" in hub.text(), "the hub connects once the broker is up", TIMEOUT)
    finally:
        hub.stop()
        broker.stop()
    lines = [line for line in hub.text().splitlines() if "cause=refused" in line]
    assert len(lines) == 1 and f"cannot connect to broker {broker.host}:{broker.port}" in lines[0] and "is the broker running" in lines[0]
    assert "Unspecified error" not in hub.text() and "Traceback" not in hub.text()
