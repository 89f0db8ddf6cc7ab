"""Fixtures of the gate tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gate.gate_process import kill_leftovers


@pytest.fixture(autouse=True)
def _no_leftover_gate() -> Iterator[None]:
    """Whatever a test leaves running is stopped before the next one starts."""
    yield
    kill_leftovers()
