"""A gate's parts on real files, opened as the composition root opens them (gate/parts.py).

A test builds its Validator over ``parts`` and reads the store, clock and
revocation set it holds: nothing is pulled back out of the validator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gate.clock import GateClock
from gate.health import GateHealth
from gate.hublink import HubLinkState
from gate.parts import GateParts, open_gate_parts


@pytest.fixture
def health() -> GateHealth:
    return GateHealth()


@pytest.fixture
def parts(tmp_path, health: GateHealth) -> Iterator[GateParts]:
    """State in ``tmp_path / "state"``, a clock with no lower bound, the hub online."""
    opened = open_gate_parts(tmp_path / "state", health, clock=GateClock(0), hub=HubLinkState(online=True))
    yield opened
    opened.close()
