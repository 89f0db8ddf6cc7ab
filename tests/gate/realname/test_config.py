"""[realname] in gate.toml: the policy reaches the engine, the readers the ID check, and
every mistake is one line naming the key and the file."""

from __future__ import annotations

import dataclasses
import re

import pytest
from nacl.signing import SigningKey

from gate.idcard.sam import SamSettings
from gate.realname.policy import HolderCheck, LegacyPolicy
from gate.scanner.settings import HidSettings
from lungta.config import ConfigError, load_gate_config
from protocol.claims import TicketType
from protocol.holder import write_site_secret
from protocol.keys import write_key_pair
from tests.test_config import GOOD, write
from tests.test_systemd import COMMENTED_SETTING, SYSTEMD
from tests.test_systemd import _site_files

REALNAME = """
[realname]
check = "types"
types = ["adult", "group"]
legacy = "deny"
secret_file = "holder.secret"
timeout_seconds = 20

[[realname.reader]]
kind = "sam"
port = "/dev/lungta-idcard"

[[realname.reader]]
kind = "hid"
device = "/dev/input/by-id/usb-keypad-event-kbd"
partial_timeout = 30.0
"""


@pytest.fixture
def secret(tmp_path):
    write_site_secret(tmp_path / "holder.secret", bytes(range(32)))


def test_realname_table_gives_policy_secret_and_readers(tmp_path, secret):
    config = load_gate_config(write(tmp_path, GOOD + REALNAME))
    policy = config.rules.realname
    assert policy.check is HolderCheck.TYPES and policy.types == {TicketType.ADULT, TicketType.GROUP} and policy.legacy is LegacyPolicy.DENY
    check = config.realname
    assert check.site_secret == bytes(range(32)) and check.timeout_seconds == 20 and check.before_scan_seconds == 5
    assert check.readers == (SamSettings("/dev/lungta-idcard"), HidSettings("/dev/input/by-id/usb-keypad-event-kbd", partial_timeout=30.0))
    assert "site_secret" not in repr(check)


def test_no_realname_table_means_no_id_check(tmp_path):
    config = load_gate_config(write(tmp_path, GOOD))
    assert config.rules.realname.check is HolderCheck.OFF and config.realname is None


@pytest.mark.parametrize("change, complaint", [
    (('check = "types"', 'check = "sometimes"'), "realname.check: 'sometimes' is not one of off, required, types"),
    (('types = ["adult", "group"]', 'types = ["vip"]'), "realname.types: unknown ticket type 'vip'"),
    (('types = ["adult", "group"]', ''), "realname.types: check = \"types\" needs at least one ticket type"),
    (('secret_file = "holder.secret"', 'secret_file = "missing.secret"'), "realname.secret_file: "),
    (('kind = "sam"', 'kind = "nfc"'), "realname.reader[0].kind: 'nfc' is not one of sam, hid, serial"),
    (('port = "/dev/lungta-idcard"', 'port = "/dev/lungta-idcard"\nbaud = 9600'), "realname.reader[0].baud: unknown key"),
    (('timeout_seconds = 20', 'timeout_seconds = 0'), "realname.timeout_seconds: 0.0 is outside 1..600"),
    (('timeout_seconds = 20', 'retired_secret_files = ["holder-2025.secret"]'), "realname.retired_secret_files: "),
    (('timeout_seconds = 20', 'retired_secret_files = "holder.secret"'), "realname.retired_secret_files: expected an array of file names"),
])
def test_each_realname_mistake_is_one_line(tmp_path, secret, change, complaint):
    path = write(tmp_path, GOOD + REALNAME.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_gate_config(path)
    assert complaint in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_checking_ids_without_a_reader_is_refused(tmp_path, secret):
    text = GOOD + REALNAME.split("[[realname.reader]]")[0]
    with pytest.raises(ConfigError, match=r"realname.reader: a gate that checks IDs needs at least one"):
        load_gate_config(write(tmp_path, text))


def test_example_gate_toml_shows_every_realname_key_and_loads_uncommented(tmp_path):
    """systemd/gate.toml documents [realname]: every key is shown, and uncommented it loads."""
    text = (SYSTEMD / "gate.toml").read_text(encoding="utf-8")
    keys = {"check", "types", "legacy", "secret_file", "retired_secret_files", "timeout_seconds", "before_scan_seconds"} | {f.name for f in dataclasses.fields(SamSettings)}
    assert not [key for key in sorted(keys) if not re.search(rf"^# ?{key} = ", text, re.MULTILINE)]
    start, end = text.index("# [realname]"), text.index("# Turnstile (mode")
    lines = [match.group(1) if (match := COMMENTED_SETTING.match(line)) else line for line in text[start:end].splitlines()]
    block = "\n".join(lines).replace('check = "off"', 'check = "types"')
    (tmp_path / "gate.toml").write_text(text[:start] + block + text[end:], encoding="utf-8")
    write_site_secret(tmp_path / "holder.secret", bytes(32))
    write_site_secret(tmp_path / "holder-2026.secret", bytes(range(32)))
    _site_files(tmp_path)  # what the example's [hub] table names
    _, public = write_key_pair(SigningKey.generate(), tmp_path / "keys", "potala-sales")
    (tmp_path / "trust.toml").write_text(f'[[key]]\nname = "potala-sales"\npublic_key_file = "{public}"\n', encoding="utf-8")
    config = load_gate_config(tmp_path / "gate.toml")
    assert config.rules.realname.types == {TicketType.GROUP} and config.realname.retired_secrets == (bytes(range(32)),)
    assert [type(r).__name__ for r in config.realname.readers] == ["SamSettings", "HidSettings", "SerialSettings"]


def test_retired_secrets_are_read_relative_to_the_file_and_never_shown(tmp_path, secret):
    write_site_secret(tmp_path / "holder-2025.secret", bytes(range(50, 82)))
    config = load_gate_config(write(tmp_path, GOOD + REALNAME.replace("timeout_seconds = 20", 'retired_secret_files = ["holder-2025.secret"]')))
    assert config.realname.retired_secrets == (bytes(range(50, 82)),) and bytes(range(50, 82)).hex() not in repr(config.realname)
