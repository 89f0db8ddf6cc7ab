"""The example configs in systemd/ show each key with the default the code uses.

systemd/gate.toml and systemd/hub.toml promise "every key ... with its default";
the defaults themselves are written once, on the settings dataclass fields. Every
`key = value` line (commented or not) is compared with the field's default, except
the values an operator must choose for the site (SITE_VALUES) and examples of keys
whose default is "not set" (a field defaulting to None, or without a default).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from gate.idcard.sam import SamSettings
from gate.realname.policy import RealNamePolicy
from gate.realname.settings import IdCheckSettings
from gate.rules import GateRules
from gate.scanner.settings import CameraSettings, HidSettings, SerialSettings
from gate.sync.settings import SyncSettings
from gate.turnstile.settings import LcusSettings, LineSettings, ModbusSettings, SimSettings, TurnstileSettings
from hub.config import HubConfig
from hub.console.settings import HttpSettings
from lungta.config import GateConfig
from protocol.bounds import default_of
from transport.mqtt import BrokerConfig

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
LINES = {"gpio.entry", "gpio.exit", "passage_sensor", "green_light", "red_light", "buzzer", "emergency_input"}

# Where each table's keys are declared; [[scanner]] and [[realname.reader]] by their `kind`.
GATE_TABLES: dict[str, tuple[type, ...]] = {
    "gate": (GateRules, GateConfig),
    "rules": (GateRules, GateConfig),
    "daemon": (GateConfig,),
    "hub": (SyncSettings, BrokerConfig),
    "realname": (RealNamePolicy, IdCheckSettings),
    "turnstile": (TurnstileSettings,),
    "turnstile.lcus": (LcusSettings,),
    "turnstile.modbus": (ModbusSettings,),
    "turnstile.sim": (SimSettings,),
    **{f"turnstile.{name}": (LineSettings,) for name in LINES},
}
HUB_TABLES: dict[str, tuple[type, ...]] = {"hub": (HubConfig,), "broker": (BrokerConfig,), "http": (HttpSettings,)}
KINDS: dict[str, dict[str, type]] = {
    "scanner": {"camera": CameraSettings, "serial": SerialSettings, "hid": HidSettings},
    "realname.reader": {"sam": SamSettings, "serial": SerialSettings, "hid": HidSettings},
}
# (table, key): values of this site, not defaults. Each is shown uncommented, as a set-up would have it.
SITE_VALUES = {
    ("hub", "host"), ("hub", "port"), ("broker", "host"), ("broker", "port"),  # the site's broker on its TLS port
    ("turnstile", "kind"),  # the example drives GPIO relays
    ("gate", "site"), ("gate", "id"), ("gate", "trust"), ("hub", "site"), ("hub", "key"), ("hub", "database"), ("hub", "trust"),
    ("hub", "username"), ("broker", "username"), ("hub", "password_file"), ("broker", "password_file"),
    ("hub", "cafile"), ("broker", "cafile"),
    ("realname", "secret_file"), ("realname", "retired_secret_files"), ("realname", "types"),
    ("scanner", "source"),  # the camera this gate has
    ("realname.reader", "partial_timeout"), ("realname.reader", "terminator"),  # a keypad and a reader set up as they ship
    # the wiring of the example's lines (their defaults are given in the prose above them)
    *{(f"turnstile.{line}", key) for line in LINES for key in ("active_low", "bias")},
}
TABLE = re.compile(r"^(?:# ?)?\[\[?([\w.]+)\]\]?\s*(?:#.*)?$")
SETTING = re.compile(r"^(?:# ?)?(\w+) = (.+)$")


def documented(path: Path) -> list[tuple[str, str, object, int]]:
    """(table, key, value, line number) of every `key = value` line, commented or not, under its table."""
    table, found = "", []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if header := TABLE.match(line):
            table = header.group(1)
            continue
        if setting := SETTING.match(line):
            key, text = setting.groups()
            value = tomllib.loads(f"v = {text}")["v"]
            found.append((table, key, value, number))
    return found


def _field_owner(classes: tuple[type, ...], key: str) -> tuple[type, str] | None:
    name = "gate_id" if key == "id" else key
    for cls in classes:
        if name in {spec.name for spec in dataclasses.fields(cls)}:
            return cls, name
    return None


def _same(value: object, default: object) -> bool:
    """A TOML value shown for a default: "entry" for Direction.ENTRY, ["a"] for ("a",), 5 for 5.0."""
    default = getattr(default, "value", getattr(default, "key", default))
    if isinstance(default, tuple):
        default = list(default)
    if isinstance(default, Path):
        default = str(default)
    return value == default and type(value) is not bool or value is default


def mismatches(path: Path, tables: dict[str, tuple[type, ...]]) -> list[str]:
    wrong, kind_of = [], {}
    for table, key, value, number in documented(path):
        if key == "kind" and table in KINDS:
            kind_of[table] = value
            continue
        if (table, key) == ("scanner", "direction"):
            continue  # its default is the gate's direction, checked by tests/test_config.py
        classes = (KINDS[table][kind_of[table]],) if table in KINDS else tables.get(table, ())
        owner = _field_owner(classes, key)
        if (table, key) in SITE_VALUES or (table, key) == ("hub", "password") or (table, key) == ("broker", "password"):
            continue
        if owner is None:
            wrong.append(f"{path.name}:{number}: [{table}] {key} is no setting the code declares")
            continue
        try:
            default = default_of(*owner)
        except KeyError:
            continue  # a required key: the example shows a value to choose
        if default is None or default == "":
            continue  # "not set" by default: the example shows what setting it looks like
        if not _same(value, default):
            wrong.append(f"{path.name}:{number}: [{table}] {key} = {value!r}, but the code's default is {default!r}")
    return wrong


@pytest.mark.parametrize("name, tables", [("gate.toml", GATE_TABLES), ("hub.toml", HUB_TABLES)])
def test_every_default_shown_in_the_example_config_is_the_codes(name: str, tables: dict[str, tuple[type, ...]]) -> None:
    wrong = mismatches(SYSTEMD / name, tables)
    assert not wrong, "\n".join(wrong)


def test_a_drifted_default_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a copy of hub.toml showing another keepalive is refused."""
    text = (SYSTEMD / "hub.toml").read_text(encoding="utf-8").replace("keepalive_s = 30", "keepalive_s = 60", 1)
    (tmp_path / "hub.toml").write_text(text, encoding="utf-8")
    assert mismatches(tmp_path / "hub.toml", HUB_TABLES) == [f"hub.toml:{_line_of(text, 'keepalive_s = 60')}: [broker] keepalive_s = 60, but the code's default is 30"]


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if line == needle)
