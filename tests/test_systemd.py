"""The shipped systemd units pass `systemd-analyze verify`, and the example gate.toml is a
config the gate accepts as shipped, listing every key it can take."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gate.scanner.settings import CameraSettings, HidSettings, SerialSettings
from gate.turnstile.settings import TurnstileSettings
from lungta.config import load_gate_config
from lungta.pki import make_ca
from protocol.keys import write_key_pair
from protocol.trust import load_trust_store

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
INSTALLED_COMMAND = "/opt/lungta/bin/lungta"
# Keys gate.toml takes outside the settings dataclasses (lungta/config.py reads them by name).
CONFIG_KEYS = {
    "gate": ("site", "id", "mode", "direction", "zone", "timezone", "state_dir", "trust", "site_root"),
    "rules": ("slot_grace_before_minutes", "slot_grace_after_minutes", "clock_jump_threshold_seconds", "clock_policy", "offline_policy"),
    "daemon": ("scan_queue_size",),
    "scanner": ("kind", "direction"),
}
COMMENTED_SETTING = re.compile(r"^# ?(\[\[?[\w.]+\]\]?|\w+ = .+)$")


def test_there_are_units_for_the_gate_and_the_hub() -> None:
    assert {unit.name for unit in UNITS} >= {"lungta-gate.service", "lungta-hub.service"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)")
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, unit: Path) -> None:
    # The units name the installed command; verify checks ExecStart is executable, so point
    # it at this checkout's lungta, run by this interpreter.
    text = unit.read_text(encoding="utf-8")
    assert INSTALLED_COMMAND in text
    copy = tmp_path / unit.name
    copy.write_text(text.replace(INSTALLED_COMMAND, f"{sys.executable} -m lungta"), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on some problems (an unknown key is only "ignoring"): any line about the unit fails too.
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_gate_unit_allows_the_scanner_and_relay_devices_and_nothing_else() -> None:
    text = (SYSTEMD / "lungta-gate.service").read_text(encoding="utf-8")
    allowed = re.findall(r"^DeviceAllow=(\S+) (\w+)$", text, re.MULTILINE)
    assert "DevicePolicy=closed" in text
    assert set(allowed) == {
        ("char-ttyUSB", "rw"), ("char-ttyACM", "rw"), ("char-ttyAMA", "rw"), ("char-ttyS", "rw"),
        ("char-input", "r"), ("char-video4linux", "rw"), ("char-gpiochip", "rw"),
    }


def test_example_gate_toml_loads_as_shipped(tmp_path: Path) -> None:
    config_path = tmp_path / "gate.toml"
    shutil.copy(SYSTEMD / "gate.toml", config_path)
    _, public = write_key_pair(SigningKey.generate(), tmp_path / "keys", "potala-sales")
    (tmp_path / "trust.toml").write_text(f'[[key]]\nname = "potala-sales"\npublic_key_file = "{public}"\n', encoding="utf-8")
    _site_files(tmp_path)
    config = load_gate_config(config_path)
    assert config.trust == tmp_path / "trust.toml"  # relative to the config, as installed: /etc/lungta/trust.toml
    assert len(load_trust_store(config.trust)) == 1
    assert config.state_dir == Path("/var/lib/lungta/gate")  # the unit's StateDirectory and ReadWritePaths
    assert config.mode == "turnstile" and config.turnstile is not None and config.turnstile.kind == "gpio"
    assert [scanner.settings for scanner in config.scanners] == [CameraSettings(source="/dev/lungta-camera", width=640, height=480)]


def test_every_commented_out_setting_in_the_example_is_valid_toml() -> None:
    """A `# key = value` line is meant to be uncommented: it must parse once it is."""
    lines = (SYSTEMD / "gate.toml").read_text(encoding="utf-8").splitlines()
    settings = [match.group(1) for match in map(COMMENTED_SETTING.match, lines) if match]
    assert len(settings) > 40
    for setting in settings:
        if not setting.startswith("["):
            tomllib.loads(setting)  # raises, quoting the line, if it would not parse


def test_example_gate_toml_mentions_every_key_the_gate_accepts() -> None:
    text = (SYSTEMD / "gate.toml").read_text(encoding="utf-8")
    keys = {key for group in CONFIG_KEYS.values() for key in group}
    for settings in (CameraSettings, SerialSettings, HidSettings, TurnstileSettings):
        keys |= _field_names(settings)
    missing = sorted(key for key in keys if not re.search(rf"^(# ?)?{key} = ", text, re.MULTILINE))
    assert not missing, f"systemd/gate.toml does not show: {', '.join(missing)}"
    for table in ("gate", "rules", "daemon", "turnstile", "turnstile.gpio.entry", "turnstile.gpio.exit", "turnstile.lcus",
                  "turnstile.modbus", "turnstile.sim", "turnstile.passage_sensor", "turnstile.green_light",
                  "turnstile.red_light", "turnstile.buzzer", "turnstile.emergency_input"):
        assert re.search(rf"^(# ?)?\[{re.escape(table)}\]$", text, re.MULTILINE), table
    kinds = re.findall(r'^(?:# ?)?kind = "(\w+)"$', text, re.MULTILINE)
    assert {"camera", "serial", "hid", "gpio"} <= set(kinds)


def _field_names(cls: type) -> set[str]:
    """The dataclass's field names, and those of the settings nested in it (sub-tables)."""
    names = set()
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        nested = [option for option in typing.get_args(hints[spec.name]) or (hints[spec.name],) if dataclasses.is_dataclass(option)]
        if nested:
            for option in nested:
                names |= _field_names(option)
        else:
            names.add(spec.name)
    return names


HUB_KEYS = {
    "hub": ("site", "key", "database", "synchronous", "heartbeat_interval_s", "snapshot_chunk", "revocation_days", "used_retention_days", "timezone", "quota_lease_s", "quota_skew_s",
            "trust", "site_root", "gate_event_rate", "gate_event_burst", "event_retention_days", "event_archive", "history_retention_days"),
    "broker": ("host", "port", "username", "password_file", "password", "client_id", "session_expiry_s", "keepalive_s", "cafile", "certfile", "keyfile"),
}
HUB_KEYS["http"] = ("listen", "tls_cert", "tls_key", "offline_alert_s", "clock_offset_alert_ms", "lag_alert", "backlog_alert", "disk_low_mb", "session_hours", "login_failures")
GATE_HUB_KEYS = ("trust", "heartbeat_seconds", "batch_events", "window_events", "resend_after_seconds", "ping_seconds", "hub_timeout_seconds", "max_rtt_seconds", "catch_up_seconds", *HUB_KEYS["broker"])


def _site_files(directory: Path) -> None:
    """The files the examples name beside them, as `lungta site init` / `hub add-gate` write them."""
    (directory / "broker-password").write_text("s3cret\n", encoding="utf-8")
    (directory / "ca.crt").write_bytes(make_ca("potala").certificate)  # `run --check` loads it as the site CA


def test_example_gate_toml_has_a_hub_table_that_loads(tmp_path: Path) -> None:
    shutil.copy(SYSTEMD / "gate.toml", tmp_path / "gate.toml")
    _site_files(tmp_path)
    (tmp_path / "trust.toml").write_text("", encoding="utf-8")
    hub = load_gate_config(tmp_path / "gate.toml").hub
    assert hub is not None and hub.trust == tmp_path / "hub.pub"
    assert (hub.broker.host, hub.broker.port, hub.broker.username, hub.broker.password, hub.broker.tls) == ("hub.potala.lan", 8883, "east-1", "s3cret", True)
    text = (SYSTEMD / "gate.toml").read_text(encoding="utf-8")
    hub_part = text[text.index("\n[hub]\n"):]
    missing = [key for key in GATE_HUB_KEYS if not re.search(rf"^(# ?)?{key} = ", hub_part, re.MULTILINE)]
    assert not missing, f"the [hub] table of systemd/gate.toml does not show: {', '.join(missing)}"


def test_example_hub_toml_loads_as_shipped_and_shows_every_key(tmp_path: Path) -> None:
    from lungta.config import load_hub_config

    shutil.copy(SYSTEMD / "hub.toml", tmp_path / "hub.toml")
    _site_files(tmp_path)
    config = load_hub_config(tmp_path / "hub.toml")
    assert config.key == tmp_path / "hub.key" and config.database == Path("/var/lib/lungta/hub/hub.db")  # the unit's StateDirectory
    assert (config.broker.username, config.broker.password, config.broker.tls, config.site) == ("hub-potala", "s3cret", True, "potala")
    text = (SYSTEMD / "hub.toml").read_text(encoding="utf-8")
    for table, keys in HUB_KEYS.items():
        part = text[text.index(f"\n[{table}]\n"):]
        missing = [key for key in keys if not re.search(rf"^(# ?)?{key} = ", part, re.MULTILINE)]
        assert not missing, f"[{table}] of systemd/hub.toml does not show: {', '.join(missing)}"
    hub_fields = {spec.name for spec in dataclasses.fields(__import__("hub.config", fromlist=["HubConfig"]).HubConfig)} - {"broker", "http"}
    http_fields = {spec.name for spec in dataclasses.fields(__import__("hub.console.settings", fromlist=["HttpSettings"]).HttpSettings)}
    assert http_fields == set(HUB_KEYS["http"]), http_fields ^ set(HUB_KEYS["http"])
    assert hub_fields <= set(HUB_KEYS["hub"]), hub_fields - set(HUB_KEYS["hub"])


def _offline_security_supported() -> bool:
    if shutil.which("systemd-analyze") is None:
        return False
    result = subprocess.run(["systemd-analyze", "security", "--help"], capture_output=True, text=True, timeout=30)
    return "--offline" in result.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_units_create_private_files_and_filter_system_calls(unit: Path) -> None:
    text = unit.read_text(encoding="utf-8")
    assert re.search(r"^UMask=0077$", text, re.MULTILINE) and re.search(r"^SystemCallFilter=@system-service$", text, re.MULTILINE)


@pytest.mark.skipif(not _offline_security_supported(), reason="this systemd-analyze has no 'security --offline' (systemd < 250)")
@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_units_exposure_stays_as_recorded_in_docs(tmp_path: Path, unit: Path) -> None:
    """docs/install.md records each unit's score; a change to the unit that weakens it fails here."""
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)], capture_output=True, text=True, timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr).group(1))
    assert score <= 2.0, result.stdout[-2000:]
