"""``lungta site init`` and ``lungta hub add-gate``: the files they make run a real TLS broker,
log the gates and the hub in, and pass ``--check``; replacing a gate retires its old password."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from tests.test_deploy import Client, fill_production_config
from testkit.broker import Broker, StartedBrokers

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None, reason="needs mosquitto and mosquitto_passwd (apt-get install mosquitto)")

SITE = "potala"


def lungta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    result = lungta("site", "init", "--site", SITE, "--broker-host", "127.0.0.1", "--broker-host", "hub.potala.lan", "--out", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "site"


def add_gate(site: Path, name: str) -> dict:
    result = lungta("hub", "add-gate", name, "--site-dir", str(site))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator:
    brokers = StartedBrokers(tmp_path)

    def _start(site: Path) -> Broker:
        """A real mosquitto running the site's broker folder as `lungta site init` made it."""
        def as_initialised(broker: Broker) -> None:
            for name in ("passwd", "acl"):
                shutil.copyfile(site / "broker/lungta" / name, broker.directory / name)
            template = (site / "broker/mosquitto.conf").read_text(encoding="utf-8")
            broker.config.write_text(fill_production_config(template, broker, site / "broker/certs"), encoding="utf-8")

        return brokers.start(as_initialised, site=SITE, gates=[])

    yield _start
    brokers.close()


def connect(broker: Broker, user: str, password: str, ca: Path) -> ReasonCode:
    client = Client(user, password, ca=ca)
    try:
        outcome = client.connect(broker.port)
        return outcome[1]
    finally:
        client.close()


def test_site_and_two_gates_log_in_over_tls_with_what_was_made(site, start_broker):
    bundles = {name: add_gate(site, name) for name in ("east-1", "west-2")}
    broker = start_broker(site)
    for name, record in bundles.items():
        folder = Path(record["folder"])
        password = (folder / "broker-password").read_text().strip()
        assert connect(broker, name, password, folder / "ca.crt").is_failure is False
    hub_password = (site / "hub/broker-password").read_text().strip()
    assert connect(broker, f"hub-{SITE}", hub_password, site / "hub/ca.crt").is_failure is False
    assert connect(broker, "east-1", "guessed", site / "hub/ca.crt").is_failure


def test_replacing_a_gate_retires_its_old_password(site, start_broker):
    old = (Path(add_gate(site, "east-1")["folder"]) / "broker-password").read_text().strip()
    record = add_gate(site, "east-1")
    assert record["replaced"] is True
    new = (Path(record["folder"]) / "broker-password").read_text().strip()
    broker = start_broker(site)
    ca = site / "hub/ca.crt"
    assert connect(broker, "east-1", old, ca).is_failure and not connect(broker, "east-1", new, ca).is_failure
    assert sum(line.startswith("east-1:") for line in (site / "broker/lungta/passwd").read_text().splitlines()) == 1


def test_the_bundle_and_the_hub_folder_pass_check(site, tmp_path):
    bundle = Path(add_gate(site, "east-1")["bundle"])
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "gate-box", filter="data")
    gate_toml = tmp_path / "gate-box/east-1/gate.toml"
    gate_toml.write_text(gate_toml.read_text().replace('"/var/lib/lungta/gate"', f'"{tmp_path / "gate-state"}"'))
    result = lungta("gate", "run", "--config", str(gate_toml), "--check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) | {"trusted_keys": 1, "hub": "127.0.0.1:8883 tls"} == json.loads(result.stdout)
    hub_toml = site / "hub/hub.toml"
    hub_toml.write_text(hub_toml.read_text().replace('"/var/lib/lungta/hub/hub.db"', f'"{tmp_path / "hub.db"}"'))
    result = lungta("hub", "run", "--config", str(hub_toml), "--check")
    assert result.returncode == 0, result.stderr


def test_secrets_are_owner_only_and_the_site_is_made_once(site):
    add_gate(site, "east-1")
    for secret in ("ca/ca.key", "issuers/sales.key", "hub/hub.key", "hub/broker-password", "broker/lungta/passwd", "broker/certs/broker.key", "gates/east-1/broker-password", "gates/east-1.tar.gz"):
        assert oct((site / secret).stat().st_mode & 0o777) == "0o600", secret
    result = lungta("site", "init", "--site", SITE, "--broker-host", "x", "--out", str(site))
    assert result.returncode == 2 and "already exists" in result.stderr and result.stderr.count("\n") == 1
    result = lungta("hub", "add-gate", "east/1", "--site-dir", str(site))
    assert result.returncode == 2 and "east/1" in result.stderr and result.stderr.count("\n") == 1
    assert set(os.listdir(site / "gates")) == {"east-1", "east-1.tar.gz"}


def test_an_exit_gate_bundle_loads_with_its_reader_facing_out(site, tmp_path):
    from lungta.config import load_gate_config
    from gate.rules import Direction

    record = add_gate(site, "exit-1") | {}
    result = lungta("hub", "add-gate", "exit-2", "--direction", "exit", "--site-dir", str(site))
    assert result.returncode == 0, result.stderr
    config = load_gate_config(Path(json.loads(result.stdout)["folder"]) / "gate.toml")
    assert config.rules.direction is Direction.EXIT and {scanner.direction for scanner in config.scanners} == {Direction.EXIT}
    assert Path(record["folder"]).is_dir() and not any(name.startswith(".") for name in os.listdir(site / "gates"))
