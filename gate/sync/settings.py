"""What gate.toml's [hub] table configures: the broker, the hub's key, the upload pace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol.bounds import setting
from transport.mqtt import BrokerConfig


@dataclass(frozen=True)
class SyncSettings:
    """``trust`` holds the hub's public key(s): only messages they sign are acted on.

    ``ping_seconds``: how often the gate asks the hub for a signed answer;
    ``hub_timeout_seconds``: without an answer for this long the hub counts as
    offline (a cut, a dead hub or a stalled broker is noticed within it);
    ``max_rtt_seconds``: an answer slower than this is not used to set the clock;
    ``catch_up_seconds``: how long a starting gate waits to apply what is queued.
    """

    trust: Path
    broker: BrokerConfig
    heartbeat_seconds: float = setting(10.0, low=1, high=3600)
    batch_events: int = setting(100, low=1, high=10_000)
    window_events: int = setting(1000, low=1, high=100_000)
    resend_after_seconds: float = setting(5.0, low=1, high=3600)  # short: a message the hub dropped for rate is sent again soon
    snapshot_retry_seconds: float = setting(10.0, low=1, high=3600)
    ping_seconds: float = setting(1.0, low=0.1, high=60)
    hub_timeout_seconds: float = setting(3.5, low=0.5, high=600)
    max_rtt_seconds: float = setting(1.0, low=0.01, high=60)
    catch_up_seconds: float = setting(5.0, low=0, high=600)
