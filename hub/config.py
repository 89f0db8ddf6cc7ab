"""hub.toml: read, checked completely, and turned into frozen values.

Every problem is reported, one line each, naming the file and the key, so an
operator fixes the whole file in one pass. Relative paths are relative to the
config file, so a site directory can be moved as a whole.

    [hub]
    site = "potala"
    key = "keys/hub.key"          # the hub's Ed25519 signing key (PEM)
    database = "hub.db"
    synchronous = "full"          # full | normal (see hub/sqlite_store.py)
    heartbeat_interval_s = 10     # a gate silent for 3 intervals is shown as stale
    snapshot_chunk = 2000
    revocation_days = 400         # default lifetime of a revocation without --expires
    used_retention_days = 3       # how long a used mark without a ticket expiry is kept
    timezone = "Asia/Shanghai"    # the site's; quota slots are local times, as at the gates
    quota_lease_s = 120           # how long a quota lease lets a cut-off gate admit (docs/quotas.md)
    quota_skew_s = 30             # margin for a gate's heartbeat clock against its lease clock

    [broker]
    host = "127.0.0.1"
    port = 8883
    username = "hub-potala"
    password_file = "secrets/broker-password"   # or password = "..."
    client_id = "lungta-hub-potala"
    session_expiry_s = 86400
    keepalive_s = 30
    cafile = "tls/ca.pem"         # any of these three turns TLS on
    certfile = "tls/hub.pem"
    keyfile = "tls/hub.key"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.mqtt import BrokerConfig
from protocol.topics import TopicError, check_name


class ConfigError(Exception):
    """hub.toml cannot be used; the message has one line per problem."""


@dataclass(frozen=True)
class HubConfig:
    site: str
    key: Path
    database: Path
    broker: BrokerConfig
    synchronous: str = "full"
    heartbeat_interval_s: int = 10
    snapshot_chunk: int = 2000
    revocation_days: int = 400
    used_retention_days: int = 3
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    quota_lease_s: int = 120
    quota_skew_s: int = 30


DEFAULT_TIMEZONE = "Asia/Shanghai"
_HUB_KEYS = {
    "site", "key", "database", "synchronous", "heartbeat_interval_s", "snapshot_chunk", "revocation_days", "used_retention_days",
    "timezone", "quota_lease_s", "quota_skew_s",
}
_BROKER_KEYS = {"host", "port", "username", "password", "password_file", "client_id", "session_expiry_s", "keepalive_s", "cafile", "certfile", "keyfile"}


class _Reader:
    """Collects errors instead of stopping at the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.errors.append(f"{self.path}: {key}: {message}")

    def table(self, document: dict, name: str, allowed: set[str], required: bool) -> dict:
        table = document.get(name, {} if not required else None)
        if not isinstance(table, dict):
            self.fail(f"[{name}]", "missing table" if table is None else "must be a table")
            return {}
        for key in sorted(set(table) - allowed):
            self.fail(f"{name}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return table

    def text(self, table: dict, section: str, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = table.get(key, default)
        if value is None:
            if required:
                self.fail(f"{section}.{key}", "required")
            return None
        if not isinstance(value, str) or not value:
            self.fail(f"{section}.{key}", f"expected a non-empty string, got {value!r}")
            return default
        return value

    def integer(self, table: dict, section: str, key: str, default: int, low: int, high: int) -> int:
        value = table.get(key, default)
        if type(value) is not int or not low <= value <= high:
            self.fail(f"{section}.{key}", f"expected an integer in {low}..{high}, got {value!r}")
            return default
        return value

    def zone(self, table: dict, section: str, key: str, default: str) -> ZoneInfo:
        name = self.text(table, section, key, default) or default
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(f"{section}.{key}", f"unknown time zone {name!r} (e.g. Asia/Shanghai)")
            return ZoneInfo(default)

    def file(self, table: dict, section: str, key: str, required: bool = False) -> Path | None:
        value = self.text(table, section, key, required=required)
        return None if value is None else (self.path.parent / value)


def load_config(path: Path) -> HubConfig:
    """Read and check ``path``; raises ConfigError listing every problem."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    read = _Reader(path)
    for key in sorted(set(document) - {"hub", "broker"}):
        read.fail(key, "unknown table or key (expected [hub] and [broker])")
    hub = read.table(document, "hub", _HUB_KEYS, required=True)
    broker = read.table(document, "broker", _BROKER_KEYS, required=False)
    site = read.text(hub, "hub", "site", required=True)
    if site is not None:
        try:
            check_name(site, "site")
        except TopicError as error:
            read.fail("hub.site", str(error))
    synchronous = read.text(hub, "hub", "synchronous", "full")
    if synchronous not in ("full", "normal"):
        read.fail("hub.synchronous", f"expected 'full' or 'normal', got {synchronous!r}")
    password = read.text(broker, "broker", "password")
    password_file = read.file(broker, "broker", "password_file")
    if password is not None and password_file is not None:
        read.fail("broker.password_file", "give either password or password_file, not both")
    elif password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            read.fail("broker.password_file", f"cannot read {password_file}: {exc.strerror}")
    username = read.text(broker, "broker", "username")
    if password is not None and username is None:
        read.fail("broker.username", "required when a password is given")
    broker_config = BrokerConfig(
        host=read.text(broker, "broker", "host", "127.0.0.1") or "127.0.0.1",
        port=read.integer(broker, "broker", "port", 1883, 1, 65535),
        username=username,
        password=password,
        client_id=read.text(broker, "broker", "client_id", f"lungta-hub-{site}") or "",
        session_expiry_s=read.integer(broker, "broker", "session_expiry_s", 86_400, 0, 2**32 - 1),
        keepalive_s=read.integer(broker, "broker", "keepalive_s", 30, 5, 65535),
        cafile=read.file(broker, "broker", "cafile"),
        certfile=read.file(broker, "broker", "certfile"),
        keyfile=read.file(broker, "broker", "keyfile"),
    )
    if (broker_config.certfile is None) != (broker_config.keyfile is None):
        read.fail("broker.certfile", "certfile and keyfile go together")
    config = HubConfig(
        site=site or "",
        key=read.file(hub, "hub", "key", required=True) or Path(),
        database=read.file(hub, "hub", "database", required=True) or Path(),
        broker=broker_config,
        synchronous=synchronous or "full",
        heartbeat_interval_s=read.integer(hub, "hub", "heartbeat_interval_s", 10, 1, 3600),
        snapshot_chunk=read.integer(hub, "hub", "snapshot_chunk", 2000, 1, 50_000),
        revocation_days=read.integer(hub, "hub", "revocation_days", 400, 1, 36_500),
        used_retention_days=read.integer(hub, "hub", "used_retention_days", 3, 1, 3650),
        timezone=read.zone(hub, "hub", "timezone", DEFAULT_TIMEZONE),
        quota_lease_s=read.integer(hub, "hub", "quota_lease_s", 120, 1, 86_400),
        quota_skew_s=read.integer(hub, "hub", "quota_skew_s", 30, 0, 3600),
    )
    if read.errors:
        raise ConfigError("\n".join(read.errors))
    return config
