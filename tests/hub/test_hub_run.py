"""`lungta hub run` as systemd runs it: a real process, SIGTERM to stop, one line for a bad config."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

from tests.hub.conftest import TIMEOUT


def test_hub_run_serves_gates_and_stops_cleanly_on_sigterm(hub_config_path, gate_factory):
    hub = subprocess.Popen([sys.executable, "-m", "lungta", "hub", "run", "--config", str(hub_config_path)], stderr=subprocess.PIPE, text=True)
    try:
        for line in hub.stderr:
            if "subscribed to" in line:  # the SUBSCRIBE is acknowledged: gate messages now reach the hub
                break
        gate = gate_factory("g1")
        gate.publish_events(gate.make_events(3))
        assert gate.wait_for(lambda view: view.acked_seq == 3, TIMEOUT), "the hub process stored and acknowledged the events"
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(TIMEOUT) == 0


def test_a_bad_hub_toml_stops_hub_run_with_one_line(tmp_path):
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nsite = "potala/x"\nkey = "k"\ndatabase = "hub.db"\n[broker]\nport = 70000\n')
    result = subprocess.run([sys.executable, "-m", "lungta", "hub", "run", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(config) in result.stderr and "hub.site" in result.stderr


def test_a_hub_database_of_wire_format_1_stops_hub_run_with_one_line(hub_config_path):
    database = hub_config_path.parent / "hub.db"
    with sqlite3.connect(database) as old:  # what a version-1 hub left: events without incarnations
        old.execute("CREATE TABLE events (event_id BLOB PRIMARY KEY, gate TEXT, seq INTEGER)")
    result = subprocess.run([sys.executable, "-m", "lungta", "hub", "run", "--config", str(hub_config_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lungta: ")]  # beside it: the plaintext-broker warning
    assert len(errors) == 1 and str(database) in errors[0] and "move it aside" in errors[0]
