"""What gate.toml's [hub] table configures: the broker, the hub's key, the upload pace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol.mqtt import BrokerConfig


@dataclass(frozen=True)
class SyncSettings:
    """``trust`` holds the hub's public key(s): only messages they sign are acted on."""

    trust: Path
    broker: BrokerConfig
    heartbeat_seconds: float = 10.0
    batch_events: int = 100
    window_events: int = 1000
    resend_after_seconds: float = 30.0
    snapshot_retry_seconds: float = 10.0
