"""What the hub is configured with; hub.toml is read by ``lungta.config.load_hub_config``.

The parts never see TOML (see lungta/config.py): a wrong value stops the
hub with one line naming the file and the key. Relative paths are relative
to hub.toml, so a site directory can be moved as a whole. Every key:

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
    trust = "trust.toml"          # the ticket issuers' keys: used marks are relayed only for tickets verified with them
    gate_event_rate = 5000        # events per second one gate may send on average (a flood delays only that gate)
    gate_event_burst = 10000      # events a gate may send at once (a gate catching up after a long cut)
    event_retention_days = 90     # events older than this are pruned (copied to event_archive first, if set)
    event_archive = "archive.db"  # optional: an SQLite file pruned events are copied to
    history_retention_days = 7    # gate birth/heartbeat history kept this long

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

    [http]                        # the operator console; every key in hub/console/settings.py
    listen = "127.0.0.1:8080"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from transport.mqtt import BrokerConfig

from .console.settings import HttpSettings

DEFAULT_TIMEZONE = "Asia/Shanghai"


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
    http: HttpSettings | None = None  # [http]: the operator console (hub/console/settings.py); None: no console
    trust: Path | None = None
    gate_event_rate: float = 5000.0
    gate_event_burst: int = 10_000
    event_retention_days: int = 90
    event_archive: Path | None = None
    history_retention_days: int = 7
