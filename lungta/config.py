"""gate.toml and hub.toml: which table holds which settings, and the checks across tables.

Each table is read into the part's own settings dataclass by
``config_tables.build_settings`` (or ``read_field`` where one dataclass spans
tables): types, defaults and bounds come from the dataclass fields, so this
module holds no default or bound of its own. What is left here is what no single
field can say: which tables exist, relative paths, ``[[scanner]]`` directions,
the real-name reader list, a broker's password file and certificate pair. The
parts (gate, turnstile, scanners, hub) get plain dataclasses and never see TOML.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from gate.clock import JUMP_THRESHOLD_SECONDS
from gate.realname.policy import HolderCheck, RealNamePolicy
from gate.realname.settings import ID_READER_KINDS, IdCheckSettings, IdReaderSettings
from gate.rules import Direction, GateRules
from gate.scanner.settings import CameraSettings, HidSettings, SerialSettings
from gate.sync.settings import SyncSettings
from gate.turnstile.settings import TurnstileSettings
from hub.config import HubConfig
from hub.console.settings import HttpSettings
from protocol.bounds import setting
from protocol.claims import TicketType
from protocol.files import UnreadableFile, read_text_file
from protocol.holder import SiteSecretError, read_site_secret
from transport.mqtt import BrokerConfig

from .config_tables import ConfigError, Section, build_settings, read_field, read_toml

__all__ = ["ConfigError", "GateConfig", "ScannerConfig", "load_gate_config", "load_hub_config"]

log = logging.getLogger(__name__)

ScannerSettings = CameraSettings | SerialSettings | HidSettings
SCANNER_KINDS: dict[str, type[ScannerSettings]] = {"camera": CameraSettings, "serial": SerialSettings, "hid": HidSettings}
MODES = ("turnstile", "handheld")


@dataclass(frozen=True)
class ScannerConfig:
    """One reader and the direction of passage its scans ask for."""

    settings: ScannerSettings
    direction: Direction


@dataclass(frozen=True)
class GateConfig:
    """Everything ``lungta gate run`` needs, validated; the keys of [gate], [rules] and [daemon]
    that are not the engine's rules are declared here, with their defaults and bounds."""

    file: Path
    rules: GateRules
    trust: Path
    state_dir: Path = Path("/var/lib/lungta/gate")
    clock_jump_threshold_seconds: float = setting(JUMP_THRESHOLD_SECONDS, low=1, high=86_400)
    mode: str = setting("turnstile", choices=MODES)
    scanners: tuple[ScannerConfig, ...] = ()
    turnstile: TurnstileSettings | None = None
    scan_queue_size: int = setting(16, low=1, high=1024)
    hub: SyncSettings | None = None
    realname: IdCheckSettings | None = None  # None: this gate does not check IDs
    site_root: Path | None = None  # the site root's public key: trust lists it signed replace `trust` (gate/trustlist.py)


def gate_rules(document: Section) -> GateRules:
    """The [gate] and [rules] tables as GateRules (``gate.id`` is the field ``gate_id``)."""
    gate, rules = document.table("gate"), document.table("rules")
    return GateRules(
        site=gate.name("site"),
        gate_id=gate.name("id"),
        direction=read_field(gate, GateRules, "direction"),
        zone=read_field(gate, GateRules, "zone") or None,
        timezone=read_field(gate, GateRules, "timezone"),
        slot_grace_before_minutes=read_field(rules, GateRules, "slot_grace_before_minutes"),
        slot_grace_after_minutes=read_field(rules, GateRules, "slot_grace_after_minutes"),
        clock_policy=read_field(rules, GateRules, "clock_policy"),
        offline_policy=read_field(rules, GateRules, "offline_policy"),
        realname=_realname_policy(document.table("realname")),
    )


def load_gate_config(path: Path) -> GateConfig:
    document = read_toml(path)
    rules = gate_rules(document)
    gate = document.table("gate")
    mode = read_field(gate, GateConfig, "mode")
    if mode == "turnstile" and not document.table("turnstile").has("kind"):
        raise ConfigError(f"{path}: turnstile.kind: missing (expected one of gpio, lcus, modbus, sim)")
    config = GateConfig(
        file=path,
        rules=rules,
        state_dir=read_field(gate, GateConfig, "state_dir"),
        trust=read_field(gate, GateConfig, "trust"),
        clock_jump_threshold_seconds=read_field(document.table("rules"), GateConfig, "clock_jump_threshold_seconds"),
        mode=mode,
        scanners=_scanners(document, rules.direction),
        turnstile=_turnstile(document) if mode == "turnstile" else None,
        scan_queue_size=read_field(document.table("daemon"), GateConfig, "scan_queue_size"),
        hub=hub_sync_settings(document.table("hub")) if document.has("hub") else None,
        realname=_id_check(document.table("realname"), rules.realname),
        site_root=read_field(gate, GateConfig, "site_root"),
    )
    if mode == "handheld" and document.has("turnstile"):
        raise ConfigError(f"{path}: turnstile: a handheld validator has no turnstile; remove the [turnstile] table or set gate.mode = \"turnstile\"")
    document.finish()
    return config


def _realname_policy(section: Section) -> RealNamePolicy:
    """[realname] check / types / legacy: which real-name tickets need an ID check (docs/realname.md)."""
    check = read_field(section, RealNamePolicy, "check")
    labels = section.raw("types", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise section.error("types", "expected an array of ticket types")
    try:
        types = frozenset(TicketType.from_label(label) for label in labels)
    except ValueError as error:
        raise section.error("types", str(error)) from None
    if check is HolderCheck.TYPES and not types:
        raise section.error("types", 'check = "types" needs at least one ticket type')
    return RealNamePolicy(check, types, read_field(section, RealNamePolicy, "legacy"))


def _id_check(section: Section, policy: RealNamePolicy) -> IdCheckSettings | None:
    """[realname] secret_file, timing and the [[realname.reader]] array; None when IDs are not checked."""
    section.read.update(("secret_file", "retired_secret_files", "timeout_seconds", "before_scan_seconds", "reader"))
    if policy.check is HolderCheck.OFF:
        return None
    try:
        secret = read_site_secret(section.path_value("secret_file"))
    except SiteSecretError as error:
        raise section.error("secret_file", str(error)) from None
    retired = _retired_secrets(section)
    entries = section.data.get("reader", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not entries:
        raise section.error("reader", "a gate that checks IDs needs at least one [[realname.reader]] table")
    readers: list[IdReaderSettings] = []
    for reader in section.tables("reader", "[[realname.reader]]"):
        kind = reader.choice("kind", "sam", ID_READER_KINDS)
        readers.append(build_settings(reader, ID_READER_KINDS[kind]))
        reader.finish()
    return IdCheckSettings(tuple(readers), secret, read_field(section, IdCheckSettings, "timeout_seconds"),
                           read_field(section, IdCheckSettings, "before_scan_seconds"), retired)


def _retired_secrets(section: Section) -> tuple[bytes, ...]:
    """[realname] retired_secret_files: the site's earlier secrets, relative to the file like every path."""
    names = section.raw("retired_secret_files", [])
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise section.error("retired_secret_files", "expected an array of file names")
    secrets = []
    for name in names:
        path = Path(name) if Path(name).is_absolute() else section.file.parent / name
        try:
            secrets.append(read_site_secret(path))
        except SiteSecretError as error:
            raise section.error("retired_secret_files", str(error)) from None
    return tuple(secrets)


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
    scanners = []
    for section in document.tables("scanner", "[[scanner]]"):
        kind = section.choice("kind", "camera", SCANNER_KINDS)
        allowed = [Direction.ENTRY.value, Direction.EXIT.value] if gate_direction is Direction.BOTH else [gate_direction.value]
        direction = Direction(section.choice("direction", allowed[0], allowed))
        settings: ScannerSettings = build_settings(section, SCANNER_KINDS[kind])
        if isinstance(settings, CameraSettings) and isinstance(settings.source, str) and _is_relative_file(settings.source):
            settings = dataclasses.replace(settings, source=str(document.file.parent / settings.source))
        section.finish()
        scanners.append(ScannerConfig(settings, direction))
    return tuple(scanners)


def broker_config(section: Section, default_client_id: str = "") -> BrokerConfig:
    """A broker table: host, port, identity (password or client certificate), TLS files."""
    password = read_field(section, BrokerConfig, "password") or None
    if section.has("password_file"):
        if password is not None:
            raise section.error("password_file", "give password or password_file, not both")
        path = section.path_value("password_file")
        try:
            password = read_text_file(path, 4096).strip()
        except UnreadableFile as error:
            raise section.error("password_file", f"cannot read {path}: {error.reason}") from None
    broker = build_settings(section, BrokerConfig, password=password)
    if (broker.certfile is None) != (broker.keyfile is None):
        raise section.error("certfile", "certfile and keyfile go together")
    return broker if broker.client_id else dataclasses.replace(broker, client_id=default_client_id)


def hub_sync_settings(hub: Section) -> SyncSettings:
    """gate.toml's [hub]: the broker the site hub uses, the hub's public key, the upload pace."""
    return build_settings(hub, SyncSettings, broker=broker_config(hub))


def load_hub_config(path: Path) -> HubConfig:
    """hub.toml: [hub], [broker] and [http]; every key is a field of HubConfig, BrokerConfig or HttpSettings."""
    document = read_toml(path)
    if not document.has("hub"):
        raise ConfigError(f"{path}: [hub]: missing table (site, key, database)")
    hub, broker = document.table("hub"), document.table("broker")
    site = hub.name("site")
    if not document.has("broker"):
        log.warning("%s: no [broker] table: connecting to the broker on 127.0.0.1:1883 without TLS or login (systemd/hub.toml shows a site set-up)", path)
    broker_settings = broker_config(broker, f"lungta-hub-{site}")
    if broker_settings.password is not None and broker_settings.username is None:
        raise broker.error("username", "required when a password is given")
    http = build_settings(document.table("http"), HttpSettings).resolved(path.parent) if document.has("http") else None
    config = build_settings(hub, HubConfig, site=site, broker=broker_settings, http=http)
    document.finish()
    return config
