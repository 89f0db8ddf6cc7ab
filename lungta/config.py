"""Configuration files: one validated place, TOML, defaults, one-line errors.

Every key is read through ``Section``, which knows the file and the dotted
path of what it reads, so an error always says which key, which file and
what was expected; unknown keys are errors too (a typo must not silently
fall back to a default on a gate). The parts (gate, turnstile, scanners,
hub) get plain dataclasses and never see TOML.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gate.realname.policy import HolderCheck, LegacyPolicy, RealNamePolicy
from gate.realname.settings import ID_READER_KINDS, IdCheckSettings
from gate.rules import ClockPolicy, Direction, GateRules, OfflinePolicy
from gate.scanner.settings import CameraSettings, HidSettings, SerialSettings
from gate.sync.settings import SyncSettings
from gate.turnstile.settings import TurnstileSettings
from hub.config import DEFAULT_TIMEZONE, HubConfig
from protocol.files import UnreadableFile, read_text_file, read_toml_file
from hub.console.settings import HttpSettings
from protocol.claims import TicketType
from protocol.holder import SiteSecretError, read_site_secret
from transport.mqtt import BrokerConfig
from protocol.topics import TopicError, check_name

log = logging.getLogger(__name__)

SCANNER_KINDS = {"camera": CameraSettings, "serial": SerialSettings, "hid": HidSettings}
MODES = ("turnstile", "handheld")


class ConfigError(Exception):
    """A configuration file is wrong; the message is the one line the operator sees."""


class Section:
    """Typed, checked access to one TOML table."""

    def __init__(self, data: dict, file: Path, path: str) -> None:
        self._data, self.file, self.path = data, file, path
        self._read: set[str] = set()
        self._children: dict[str, Section] = {}

    def _where(self, key: str) -> str:
        return f"{self.file}: {self.path + '.' if self.path else ''}{key}"

    def _get(self, key: str, default: object, kind: type | tuple[type, ...], expected: str) -> object:
        self._read.add(key)
        if key not in self._data:
            if default is _REQUIRED:
                raise ConfigError(f"{self._where(key)}: missing (expected {expected})")
            return default
        value = self._data[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"{self._where(key)}: expected {expected}, got {value!r}")
        return value

    def text(self, key: str, default: object = None) -> str:
        value = self._get(key, _REQUIRED if default is None else default, str, "a string")
        if not value:
            raise ConfigError(f"{self._where(key)}: must not be empty")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._get(key, None, str, "a string")
        return value or None

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key, default, int, f"an integer {low}..{high}")
        if not low <= value <= high:
            raise ConfigError(f"{self._where(key)}: {value} is outside {low}..{high}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = float(self._get(key, default, (int, float), f"a number {low}..{high}"))
        if not low <= value <= high:
            raise ConfigError(f"{self._where(key)}: {value} is outside {low}..{high}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        return self._get(key, default, bool, "true or false")

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = list(choices)
        value = self._get(key, default, str, f"one of {', '.join(options)}")
        if value not in options:
            raise ConfigError(f"{self._where(key)}: {value!r} is not one of {', '.join(options)}")
        return value

    def path_value(self, key: str, default: str | None = None) -> Path:
        """A path; relative paths are taken relative to the config file."""
        raw = Path(self.text(key, default))
        return raw if raw.is_absolute() else self.file.parent / raw

    def zone(self, key: str, default: str) -> ZoneInfo:
        """An IANA time zone name, e.g. Asia/Shanghai."""
        name = self.text(key, default)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{self._where(key)}: unknown time zone {name!r} (e.g. Asia/Shanghai)") from None

    def name(self, key: str) -> str:
        """A site or gate id: one MQTT topic level (see protocol/topics.py)."""
        value = self.text(key)
        try:
            return check_name(value, key)
        except TopicError as error:
            raise ConfigError(f"{self._where(key)}: {error}") from None

    def table(self, key: str) -> "Section":
        """The sub-table ``key`` (empty if absent); the same object on every call."""
        if key not in self._children:
            value = self._get(key, {}, dict, "a table")
            self._children[key] = Section(value, self.file, f"{self.path + '.' if self.path else ''}{key}")
        return self._children[key]

    def has(self, key: str) -> bool:
        return key in self._data

    def finish(self) -> None:
        """Refuse keys nobody read, here and in every sub-table: a misspelt key is an error, not a silent default."""
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise ConfigError(f"{self._where(unknown[0])}: unknown key")
        for child in self._children.values():
            child.finish()


_REQUIRED = object()


def build_settings(section: Section, cls: type) -> object:
    """Construct the settings dataclass ``cls`` from a TOML table, field by field.

    Types come from the dataclass's annotations (int, float, str, bool,
    optional values, tuples, nested settings as sub-tables); a missing key
    takes the dataclass default; a value the dataclass itself refuses
    (``__post_init__`` raising ValueError) becomes a ConfigError naming the
    table. The parts keep their validation, the file keeps its one error line.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for spec in dataclasses.fields(cls):
        if section.has(spec.name):
            values[spec.name] = _typed_value(section, spec.name, hints[spec.name])
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{section._where(spec.name)}: missing")
    try:
        return cls(**values)
    except ValueError as error:
        raise ConfigError(f"{section.file}: [{section.path}] {error}") from None


def _typed_value(section: Section, key: str, hint: object) -> object:
    options = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(section._data.get(key), dict):
            return build_settings(section.table(key), option)
    value = section._data[key]
    section._read.add(key)
    for option in options:
        if _matches(value, option):
            return tuple(value) if typing.get_origin(option) is tuple else float(value) if option is float else value
    expected = " or ".join(_describe(o) for o in options)
    raise ConfigError(f"{section._where(key)}: expected {expected}, got {value!r}")


def _is_union(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _matches(value: object, option: object) -> bool:
    if option is bool:
        return isinstance(value, bool)
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if option is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if option is str:
        return isinstance(value, str)
    if typing.get_origin(option) is tuple:
        items = typing.get_args(option)
        item_type = items[0] if items else object
        return isinstance(value, list) and all(_matches(v, item_type) or item_type is object for v in value)
    return False


def _describe(option: object) -> str:
    if typing.get_origin(option) is tuple:
        return "an array"
    if dataclasses.is_dataclass(option):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(option, str(option))


def read_toml(path: Path) -> Section:
    """A config file as a Section: a bounded regular file, UTF-8, valid TOML (protocol/files.py)."""
    try:
        return Section(read_toml_file(path), path, "")
    except UnreadableFile as error:
        raise ConfigError(str(error)) from None


@dataclass(frozen=True)
class ScannerConfig:
    """One reader and the direction of passage its scans ask for."""

    settings: CameraSettings | SerialSettings | HidSettings
    direction: Direction


@dataclass(frozen=True)
class GateConfig:
    """Everything ``lungta gate run`` needs, validated."""

    file: Path
    rules: GateRules
    state_dir: Path
    trust: Path
    clock_jump_threshold_seconds: float
    mode: str = "turnstile"
    scanners: tuple[ScannerConfig, ...] = ()
    turnstile: TurnstileSettings | None = None
    scan_queue_size: int = 16
    hub: SyncSettings | None = None
    realname: IdCheckSettings | None = None  # None: this gate does not check IDs


def gate_rules(section: Section) -> GateRules:
    """The [gate] and [rules] tables as GateRules."""
    gate = section.table("gate")
    rules = section.table("rules")
    zone = gate.zone("timezone", DEFAULT_TIMEZONE)
    return GateRules(
        site=gate.name("site"),
        gate_id=gate.name("id"),
        direction=Direction(gate.choice("direction", "entry", [d.value for d in Direction])),
        zone=gate.optional_text("zone"),
        timezone=zone,
        slot_grace_before_minutes=rules.integer("slot_grace_before_minutes", 15, 0, 720),
        slot_grace_after_minutes=rules.integer("slot_grace_after_minutes", 30, 0, 720),
        clock_policy=ClockPolicy(rules.choice("clock_policy", "deny", [p.value for p in ClockPolicy])),
        offline_policy=OfflinePolicy(rules.choice("offline_policy", "admit_flagged", [p.value for p in OfflinePolicy])),
        realname=_realname_policy(section.table("realname")),
    )


def load_gate_config(path: Path) -> GateConfig:
    document = read_toml(path)
    rules = gate_rules(document)
    gate = document.table("gate")
    mode = gate.choice("mode", "turnstile", MODES)
    if mode == "turnstile" and not document.table("turnstile").has("kind"):
        raise ConfigError(f"{path}: turnstile.kind: missing (expected one of gpio, lcus, modbus, sim)")
    config = GateConfig(
        file=path,
        rules=rules,
        state_dir=gate.path_value("state_dir", "/var/lib/lungta/gate"),
        trust=gate.path_value("trust"),
        clock_jump_threshold_seconds=document.table("rules").number("clock_jump_threshold_seconds", 300, 1, 86400),
        mode=mode,
        scanners=_scanners(document, rules.direction),
        turnstile=_turnstile(document) if mode == "turnstile" else None,
        scan_queue_size=document.table("daemon").integer("scan_queue_size", 16, 1, 1024),
        hub=hub_sync_settings(document.table("hub")) if document.has("hub") else None,
        realname=_id_check(document.table("realname"), rules.realname),
    )
    if mode == "handheld" and document.has("turnstile"):
        raise ConfigError(f"{path}: turnstile: a handheld validator has no turnstile; remove the [turnstile] table or set gate.mode = \"turnstile\"")
    document.finish()
    return config


def _realname_policy(section: Section) -> RealNamePolicy:
    """[realname] check / types / legacy: which real-name tickets need an ID check (docs/realname.md)."""
    check = HolderCheck(section.choice("check", "off", [c.value for c in HolderCheck]))
    section._read.add("types")
    labels = section._data.get("types", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ConfigError(f"{section._where('types')}: expected an array of ticket types")
    try:
        types = frozenset(TicketType.from_label(label) for label in labels)
    except ValueError as error:
        raise ConfigError(f"{section._where('types')}: {error}") from None
    if check is HolderCheck.TYPES and not types:
        raise ConfigError(f"{section._where('types')}: check = \"types\" needs at least one ticket type")
    return RealNamePolicy(check, types, LegacyPolicy(section.choice("legacy", "check", [p.value for p in LegacyPolicy])))


def _id_check(section: Section, policy: RealNamePolicy) -> IdCheckSettings | None:
    """[realname] secret_file, timing and the [[realname.reader]] array; None when IDs are not checked."""
    section._read.update(("secret_file", "timeout_seconds", "before_scan_seconds", "reader"))
    if policy.check is HolderCheck.OFF:
        return None
    try:
        secret = read_site_secret(section.path_value("secret_file"))
    except SiteSecretError as error:
        raise ConfigError(f"{section._where('secret_file')}: {error}") from None
    entries = section._data.get("reader", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not entries:
        raise ConfigError(f"{section._where('reader')}: a gate that checks IDs needs at least one [[realname.reader]] table")
    readers = []
    for index, entry in enumerate(entries):
        reader = Section(entry, section.file, f"realname.reader[{index}]")
        kind = reader.choice("kind", "sam", ID_READER_KINDS)
        readers.append(build_settings(reader, ID_READER_KINDS[kind]))
        reader.finish()
    return IdCheckSettings(tuple(readers), secret, section.number("timeout_seconds", 30, 1, 600), section.number("before_scan_seconds", 5, 0, 60))


def _turnstile(document: Section) -> TurnstileSettings:
    """[turnstile]; the sim's output path, like every path in the file, is relative to the file."""
    settings = build_settings(document.table("turnstile"), TurnstileSettings)
    sim = settings.sim
    if sim is not None and sim.output_path and not Path(sim.output_path).is_absolute():
        settings = dataclasses.replace(settings, sim=dataclasses.replace(sim, output_path=str(document.file.parent / sim.output_path)))
    return settings


def _is_relative_file(source: str | int) -> bool:
    """A camera source naming a file or folder relative to gate.toml (not a device index, path or URL)."""
    return isinstance(source, str) and "://" not in source and not source.isdigit() and not Path(source).is_absolute()


def _scanners(document: Section, gate_direction: Direction) -> tuple[ScannerConfig, ...]:
    """The [[scanner]] array: each table has ``kind``, ``direction`` and that kind's settings.

    A scanner's direction defaults to the gate's (entry when the gate is
    both ways) and must be one the gate allows: an entry-only gate has no
    exit reader.
    """
    document._read.add("scanner")
    entries = document._data.get("scanner", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{document.file}: scanner: expected an array of tables ([[scanner]])")
    scanners = []
    for index, entry in enumerate(entries):
        section = Section(entry, document.file, f"scanner[{index}]")
        kind = section.choice("kind", "camera", SCANNER_KINDS)
        allowed = [Direction.ENTRY.value, Direction.EXIT.value] if gate_direction is Direction.BOTH else [gate_direction.value]
        direction = Direction(section.choice("direction", allowed[0], allowed))
        settings = build_settings(section, SCANNER_KINDS[kind])
        if isinstance(settings, CameraSettings) and _is_relative_file(settings.source):
            settings = dataclasses.replace(settings, source=str(document.file.parent / settings.source))
        section.finish()
        scanners.append(ScannerConfig(settings, direction))
    return tuple(scanners)


def broker_config(section: Section, default_client_id: str = "") -> BrokerConfig:
    """A broker table: host, port, identity (password or client certificate), TLS files."""
    password = section.optional_text("password")
    if section.has("password_file"):
        if password is not None:
            raise ConfigError(f"{section._where('password_file')}: give password or password_file, not both")
        path = section.path_value("password_file")
        try:
            password = read_text_file(path, 4096).strip()
        except UnreadableFile as error:
            raise ConfigError(f"{section._where('password_file')}: cannot read {path}: {error.reason}") from None
    files = {key: section.path_value(key) if section.has(key) else None for key in ("cafile", "certfile", "keyfile")}
    if (files["certfile"] is None) != (files["keyfile"] is None):
        raise ConfigError(f"{section._where('certfile')}: certfile and keyfile go together")
    return BrokerConfig(
        host=section.text("host", "127.0.0.1"),
        port=section.integer("port", 1883, 1, 65535),
        username=section.optional_text("username"),
        password=password,
        client_id=section.optional_text("client_id") or default_client_id,
        session_expiry_s=section.integer("session_expiry_s", 7 * 86_400, 0, 2**32 - 1),
        keepalive_s=section.integer("keepalive_s", 30, 5, 65535),
        **files,
    )


def hub_sync_settings(hub: Section) -> SyncSettings:
    """gate.toml's [hub]: the broker the site hub uses, and the hub's public key."""
    return SyncSettings(
        trust=hub.path_value("trust"),
        broker=broker_config(hub),
        heartbeat_seconds=hub.number("heartbeat_seconds", 10, 1, 3600),
        batch_events=hub.integer("batch_events", 100, 1, 10_000),
        window_events=hub.integer("window_events", 1000, 1, 100_000),
        resend_after_seconds=hub.number("resend_after_seconds", 5, 1, 3600),
        ping_seconds=hub.number("ping_seconds", 1.0, 0.1, 60),
        hub_timeout_seconds=hub.number("hub_timeout_seconds", 3.5, 0.5, 600),
        max_rtt_seconds=hub.number("max_rtt_seconds", 1.0, 0.01, 60),
        catch_up_seconds=hub.number("catch_up_seconds", 5.0, 0, 600),
    )


def load_hub_config(path: Path) -> HubConfig:
    """hub.toml: [hub] and [broker]; every key is described in hub/config.py."""
    document = read_toml(path)
    hub, broker = document.table("hub"), document.table("broker")
    if not document.has("hub"):
        raise ConfigError(f"{path}: [hub]: missing table (site, key, database)")
    site = hub.name("site")
    if not document.has("broker"):
        log.warning("%s: no [broker] table: connecting to the broker on 127.0.0.1:1883 without TLS or login (systemd/hub.toml shows a site set-up)", path)
    broker_settings = broker_config(broker, f"lungta-hub-{site}")
    if broker_settings.password is not None and broker_settings.username is None:
        raise ConfigError(f"{broker._where('username')}: required when a password is given")
    config = HubConfig(
        site=site,
        key=hub.path_value("key"),
        database=hub.path_value("database"),
        broker=broker_settings,
        synchronous=hub.choice("synchronous", "full", ["full", "normal"]),
        heartbeat_interval_s=hub.integer("heartbeat_interval_s", 10, 1, 3600),
        snapshot_chunk=hub.integer("snapshot_chunk", 2000, 1, 50_000),
        revocation_days=hub.integer("revocation_days", 400, 1, 36_500),
        used_retention_days=hub.integer("used_retention_days", 3, 1, 3650),
        timezone=hub.zone("timezone", DEFAULT_TIMEZONE),
        quota_lease_s=hub.integer("quota_lease_s", 120, 1, 86_400),
        quota_skew_s=hub.integer("quota_skew_s", 30, 0, 3600),
        http=build_settings(document.table("http"), HttpSettings).resolved(path.parent) if document.has("http") else None,  # type: ignore[attr-defined]
        trust=hub.path_value("trust") if hub.has("trust") else None,
        gate_event_rate=hub.number("gate_event_rate", 5000, 1, 100_000_000),
        gate_event_burst=hub.integer("gate_event_burst", 10_000, 1, 1_000_000_000),
        event_retention_days=hub.integer("event_retention_days", 90, 1, 36_500),
        event_archive=hub.path_value("event_archive") if hub.has("event_archive") else None,
        history_retention_days=hub.integer("history_retention_days", 7, 1, 36_500),
    )
    document.finish()
    return config
