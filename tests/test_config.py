"""gate.toml validation: every mistake is one line naming the key and the file."""

from pathlib import Path

import pytest

from gate.rules import ClockPolicy, Direction
from lungta.config import ConfigError, load_gate_config

GOOD = """
[gate]
site = "potala"
id = "east-1"
mode = "handheld"
direction = "both"
zone = "red-palace"
timezone = "Asia/Shanghai"
state_dir = "state"
trust = "trust.toml"

[rules]
slot_grace_before_minutes = 10
clock_policy = "admit_flagged"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_config_is_read_with_defaults_and_relative_paths(tmp_path):
    config = load_gate_config(write(tmp_path, GOOD))
    assert config.rules.site == "potala" and config.rules.gate_id == "east-1"
    assert config.rules.direction is Direction.BOTH and config.rules.zone == "red-palace"
    assert config.rules.slot_grace_before_minutes == 10 and config.rules.slot_grace_after_minutes == 30
    assert config.rules.clock_policy is ClockPolicy.ADMIT_FLAGGED
    assert config.state_dir == tmp_path / "state" and config.trust == tmp_path / "trust.toml"


@pytest.mark.parametrize(
    "change, complaint",
    [
        (('site = "potala"', ""), "gate.site: missing (expected a string)"),
        (('direction = "both"', 'direction = "sideways"'), "gate.direction: 'sideways' is not one of entry, exit, both"),
        (('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"'), "gate.timezone: unknown time zone 'Mars/Olympus'"),
        (("slot_grace_before_minutes = 10", "slot_grace_before_minutes = -5"), "rules.slot_grace_before_minutes: -5 is outside 0..720"),
        (("slot_grace_before_minutes = 10", 'slot_grace_before_minutes = "ten"'), "rules.slot_grace_before_minutes: expected an integer"),
        (("slot_grace_before_minutes = 10", "slot_grace_befor_minutes = 10"), "rules.slot_grace_befor_minutes: unknown key"),
        (('[rules]', '[rulez]'), "rulez: unknown key"),
        (('id = "east-1"', 'id = "east-1'), "not valid TOML"),
    ],
)
def test_each_mistake_is_one_line_naming_key_and_file(tmp_path, change, complaint):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_gate_config(path)
    message = str(caught.value)
    assert complaint in message and str(path) in message and "\n" not in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="gate.toml: cannot read"):
        load_gate_config(tmp_path / "gate.toml")


HUB = """
[hub]
host = "hub.potala.lan"
port = 8883
trust = "keys/hub.pub"
password_file = "secrets/broker-password"
cafile = "tls/ca.pem"
heartbeat_seconds = 5
"""


def test_the_hub_table_configures_the_broker_link(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "broker-password").write_text("s3cret\n")
    config = load_gate_config(write(tmp_path, GOOD + HUB))
    hub = config.hub
    assert hub.trust == tmp_path / "keys/hub.pub" and hub.heartbeat_seconds == 5
    assert (hub.broker.host, hub.broker.port, hub.broker.password, hub.broker.tls) == ("hub.potala.lan", 8883, "s3cret", True)
    assert load_gate_config(write(tmp_path, GOOD)).hub is None


@pytest.mark.parametrize(
    "extra, complaint",
    [
        ('certfile = "tls/gate.pem"\n', "hub.certfile: certfile and keyfile go together"),
        ('port = 0\n', "hub.port: 0 is outside 1..65535"),
        ('hots = "x"\n', "hub.hots: unknown key"),
        ('client_id = ""\n', "hub.client_id: must not be empty"),
    ],
)
def test_hub_table_mistakes_are_one_line(tmp_path, extra, complaint):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "broker-password").write_text("s3cret\n")
    text = (GOOD + HUB).replace("port = 8883\n", "") + extra
    with pytest.raises(ConfigError) as caught:
        load_gate_config(write(tmp_path, text))
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreadable_password_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="hub.password_file: cannot read"):
        load_gate_config(write(tmp_path, GOOD + HUB))


def test_an_entry_only_gate_refuses_an_exit_scanner_and_an_exit_gate_defaults_to_exit(tmp_path):
    base = GOOD.replace('mode = "handheld"\n', 'mode = "handheld"\n').replace('direction = "both"', 'direction = "entry"')
    with pytest.raises(ConfigError, match=r"scanner\[0\].direction: 'exit' is not one of entry"):
        load_gate_config(write(tmp_path, base + '\n[[scanner]]\nkind = "serial"\nport = "/dev/ttyS0"\ndirection = "exit"\n'))
    exit_gate = GOOD.replace('direction = "both"', 'direction = "exit"') + '\n[[scanner]]\nkind = "serial"\nport = "/dev/ttyS0"\n'
    assert load_gate_config(write(tmp_path, exit_gate)).scanners[0].direction is Direction.EXIT
