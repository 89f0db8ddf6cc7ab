"""What the hub is configured with; hub.toml is read by ``lungta.config.load_hub_config``.

Each key of hub.toml's [hub] table is a field below, with its default and bounds
written once, here (``protocol.bounds.setting``); [broker] is ``BrokerConfig``,
[http] is ``HttpSettings``. systemd/hub.toml shows and explains every key, and
tests/test_config_defaults.py checks that what it shows is these defaults. The
parts never see TOML: a wrong value stops the hub with one line naming the file
and the key. Relative paths are relative to hub.toml, so a site directory can be
moved as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from protocol.bounds import setting
from transport.mqtt import BrokerConfig

from .console.settings import HttpSettings

DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class HubConfig:
    site: str
    key: Path
    database: Path
    broker: BrokerConfig
    synchronous: str = setting("full", choices=("full", "normal"))
    heartbeat_interval_s: int = setting(10, low=1, high=3600)
    snapshot_chunk: int = setting(2000, low=1, high=50_000)
    revocation_days: int = setting(400, low=1, high=36_500)
    used_retention_days: int = setting(3, low=1, high=3650)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    quota_lease_s: int = setting(120, low=1, high=86_400)
    quota_skew_s: int = setting(30, low=0, high=3600)
    http: HttpSettings | None = None  # [http]: the operator console (hub/console/settings.py); None: no console
    trust: Path | None = None
    site_root: Path | None = None  # pinned site root public key: `lungta hub trust publish` is refused without it
    gate_event_rate: float = setting(5000.0, low=1, high=100_000_000)
    gate_event_burst: int = setting(10_000, low=1, high=1_000_000_000)
    event_retention_days: int = setting(90, low=1, high=36_500)
    event_archive: Path | None = None
    history_retention_days: int = setting(7, low=1, high=36_500)
