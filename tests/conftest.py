"""Fixtures shared by every test: real keys on disk, a real trust store, a ticket mint, a real broker.

The values and helpers behind them live in ``testkit`` (``testkit.tickets``: ``SITE``, ``NOW``,
``make_claims``; ``testkit.broker``: ``Broker``), which benchmarks share.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from nacl.signing import SigningKey

from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket
from protocol.trust import TrustedKey, TrustStore
from testkit.broker import Broker, StartedBrokers
from testkit.live_gate import kill_leftovers
from testkit.tickets import make_claims


@pytest.fixture
def issuer_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def trust(issuer_key: SigningKey) -> TrustStore:
    return TrustStore([TrustedKey("sales", issuer_key.verify_key)])


@pytest.fixture
def key_files(tmp_path: Path, issuer_key: SigningKey) -> tuple[Path, Path]:
    return write_key_pair(issuer_key, tmp_path / "keys", "sales")


@pytest.fixture
def mint(issuer_key: SigningKey) -> Callable[..., str]:
    """mint(**claim_overrides) -> QR text signed by the trusted issuer key."""

    def _mint(**overrides: object) -> str:
        return issue_ticket(make_claims(**overrides), issuer_key)

    return _mint


@pytest.fixture
def wall_now() -> int:
    return int(time.time())


@pytest.fixture
def hub_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def hub_trust(hub_key: SigningKey) -> TrustStore:
    return TrustStore([TrustedKey("hub", hub_key.verify_key)])


@pytest.fixture(autouse=True)
def _no_leftover_gate() -> Iterator[None]:
    """Whatever gate daemon a test leaves running (it failed before stopping it) is stopped
    before the next test starts (``testkit.live_gate.kill_leftovers``)."""
    yield
    kill_leftovers()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """make_broker(gates=[...], **options) -> a started Broker with the site ACL, stopped at teardown."""
    brokers = StartedBrokers(tmp_path)
    yield lambda gates, **options: brokers.start(gates=gates, **options)
    brokers.close()


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    """The site ``potala``'s broker: a hub user and gates ``g1..g3``."""
    return make_broker(["g1", "g2", "g3"])
