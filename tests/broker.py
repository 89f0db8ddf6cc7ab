"""The broker fixtures: a real Mosquitto (``hub.local_broker.Broker``) with the site ACL.

Use the ``broker`` fixture (site ``potala``, a hub user and gates ``g1..g3``)
or ``make_broker`` for other sets of gates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.local_broker import HOST, HUB_USER, SITE, Broker, BrokerError, free_port

__all__ = ["HOST", "HUB_USER", "SITE", "Broker", "BrokerError", "free_port", "broker", "make_broker"]


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """make_broker(gates=[...], **options) -> a started Broker, stopped at teardown."""
    started: list[Broker] = []

    def _make(gates: list[str], **options: object) -> Broker:
        broker = Broker(tmp_path / f"broker{len(started)}", gates=gates, **options)
        broker.start()
        started.append(broker)
        return broker

    yield _make
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker(["g1", "g2", "g3"])
