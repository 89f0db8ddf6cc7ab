"""Two machines with one broker login: a second hub for the site, or two gates with one gate id.

With ``use_username_as_clientid`` the broker lets the newer connection take
over the older one's session and drops the older, which reconnects at once
and drops the newer: without detection the two knock each other off every
second, logging nothing but "Unspecified error". Here real ``lungta``
processes share one login against a real Mosquitto; each side must name the
cause in one ERROR line and back off, and the hub's console must alert.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from testkit.broker import Broker
from testkit.faults.site import Process
from testkit.waiting import wait_until
from testkit.live_gate import hub_section, write_gate_config
from testkit.ptys import RawPty
from testkit.hub_config import write_hub_config
from tests.hub.console.conftest import console  # noqa: F401 (fixture)

KICKED = "already connected, closing old connection"  # Mosquitto's log line for each takeover
TIMEOUT = 60.0
QUIET_S = 5.0  # without the backoff a takeover happens every second


def _lines(process: Process, needle: str) -> list[str]:
    return [line for line in process.text().splitlines() if needle in line]


def _assert_no_new_takeover(broker: Broker, processes: list[Process]) -> None:
    """The fight stopped: the broker drops nobody for QUIET_S (the backoff is 30 s), and both keep running."""
    kicks = broker.log().count(KICKED)
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:
        assert broker.log().count(KICKED) == kicks, "the two clients still knock each other off"
        assert all(process.running for process in processes), "a client exited instead of backing off"
        time.sleep(0.2)  # polling interval of a check that nothing happens, not a synchronisation


def test_a_second_hub_for_the_site_is_detected_logged_and_backs_off(tmp_path, broker, hub_key):
    configs = [write_hub_config(tmp_path / f"hub{index}", broker, hub_key) for index in (1, 2)]
    hubs = [Process(f"hub{index}", [sys.executable, "-m", "lungta", "hub", "run", "--config", str(path)], path.parent / "hub.log", path.parent)
            for index, path in enumerate(configs, 1)]
    try:
        for hub in hubs:
            hub.start()
        noticed = wait_until(lambda: [hub for hub in hubs if _lines(hub, "cause=session_taken_over")], "a hub notices the other", TIMEOUT)
        line = _lines(noticed[0], "cause=session_taken_over")[0]
        assert " ERROR transport.mqtt: " in line and "user hub-potala" in line and "a second hub for this site" in line and "waiting 30 s" in line
        assert not [text for hub in hubs for text in _lines(hub, "Unspecified error")], "the cause is named, not paho's 'Unspecified error'"
        _assert_no_new_takeover(broker, hubs)
    finally:
        for hub in hubs:
            hub.stop()


def _gate_toml(directory: Path, broker: Broker, hub_pub: Path, issuer_pub: Path, scanner: RawPty) -> Path:
    return write_gate_config(directory, issuer_pub, scanner.port, gate_id="g1", site=broker.site, sections=hub_section(broker, "g1", hub_pub))


def test_two_gates_with_one_gate_id_are_detected_logged_alerted_and_back_off(tmp_path, broker, console, key_files):
    scanners = [RawPty(), RawPty()]
    hub_pub = console.config_path.parent / "keys" / "hub.pub"
    gates = []
    for index, scanner in enumerate(scanners, 1):
        path = _gate_toml(tmp_path / f"clone{index}", broker, hub_pub, key_files[1], scanner)
        gates.append(Process(f"clone{index}", [sys.executable, "-m", "lungta", "gate", "run", "--config", str(path)], path.parent / "gate.log", path.parent))
    try:
        for gate in gates:
            gate.start()
        noticed = wait_until(lambda: [gate for gate in gates if _lines(gate, "cause=session_taken_over")], "a clone notices the other", TIMEOUT)
        line = _lines(noticed[0], "cause=session_taken_over")[0]
        assert " ERROR transport.mqtt: " in line and "user g1" in line and "two gates with one gate id" in line
        data = console.wait_snapshot(lambda data: any(alert["kind"] == "session_taken_over" and alert["gate"] == "g1" for alert in data["alerts"]), TIMEOUT)
        alert = next(alert for alert in data["alerts"] if alert["kind"] == "session_taken_over")
        assert alert["severity"] == "critical" and "two gates with one gate id" in alert["message"]
        _assert_no_new_takeover(broker, gates)
    finally:
        for gate in gates:
            gate.stop()
        for scanner in scanners:
            scanner.close()


def test_the_console_of_a_hub_whose_login_a_second_hub_takes_over_alerts(tmp_path, broker, console, hub_key):
    second_config = write_hub_config(tmp_path / "second-hub", broker, hub_key)  # the same site and login, another box
    second = Process("second-hub", [sys.executable, "-m", "lungta", "hub", "run", "--config", str(second_config)], second_config.parent / "hub.log", second_config.parent)
    try:
        second.start()
        # whichever hub counts three takeovers first backs off; the other notices when the first comes back 30 s later
        data = console.wait_snapshot(lambda data: any(alert["kind"] == "hub_session_taken_over" for alert in data["alerts"]), 2 * TIMEOUT)
        alert = next(alert for alert in data["alerts"] if alert["kind"] == "hub_session_taken_over")
        assert alert["severity"] == "critical" and alert["gate"] is None and "a second hub for this site" in alert["message"]
        assert data["hub"]["session_takeovers"] >= 1
    finally:
        second.stop()
