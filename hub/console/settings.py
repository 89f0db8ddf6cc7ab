"""hub.toml's ``[http]``: where the console listens and when it raises alerts.

Read by ``lungta.config.load_hub_config`` with ``build_settings``: every key
is a field below, its default written once, here. Relative TLS paths are
relative to hub.toml (``resolved``). Imports nothing of ``hub`` so the hub's
config may hold it without an import cycle.

    [http]
    listen = "127.0.0.1:8080"     # host:port; ":8080" or "0.0.0.0:8080" for every interface
    tls_cert = "tls/console.pem"  # both or neither: HTTPS, else plain HTTP (put nginx in front, docs/console.md)
    tls_key = "tls/console.key"
    offline_alert_s = 30          # a gate silent (stale), or a lag, backlog or trust list behind, this long raises an alert (offline: at once)
    clock_offset_alert_ms = 5000  # a gate clock this far from the hub's
    lag_alert = 1                 # revocation or used-mark deltas a gate is behind
    backlog_alert = 1000          # events a gate holds unacknowledged
    disk_low_mb = 500
    session_hours = 12            # a dashboard login lasts this long
    login_failures = 5            # per account and per address, per minute, then 429
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:8080"
    tls_cert: str | None = None
    tls_key: str | None = None
    offline_alert_s: float = 30.0
    clock_offset_alert_ms: int = 5000
    lag_alert: int = 1
    backlog_alert: int = 1000
    disk_low_mb: int = 500
    session_hours: float = 12.0
    login_failures: int = 5

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both for HTTPS, or neither")
        for name in ("offline_alert_s", "session_hours"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("clock_offset_alert_ms", "lag_alert", "backlog_alert", "disk_low_mb", "login_failures"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def resolved(self, base: Path) -> "HttpSettings":
        """The same settings with TLS paths made absolute against hub.toml's directory."""
        def absolute(text: str | None) -> str | None:
            return None if text is None else str(base / Path(text).expanduser())
        return replace(self, tls_cert=absolute(self.tls_cert), tls_key=absolute(self.tls_key))


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6, ``:8080`` for every interface) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen {text!r} is not host:port with a port 0-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
