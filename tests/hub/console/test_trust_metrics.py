"""The operator sees which gates have which trust list: the console's gate view and /metrics, from a live hub."""

from __future__ import annotations

from tests.hub.console.conftest import Client
from tests.hub.console.test_metrics import _samples


def test_each_gates_installed_trust_list_version_is_shown_and_exported(console, gate_factory) -> None:
    gate_factory("g1").heartbeat(scanner="ok", relay="ok", trust_version=3)
    gate_factory("g2").heartbeat(scanner="ok", relay="ok", trust_version=None)
    console.wait_snapshot(lambda d: {g["gate"]: g.get("trust_version", "missing") for g in d.get("gates", [])} == {"g1": 3, "g2": None})
    samples = _samples(Client(console.url).get("/metrics").body.decode())
    assert samples["lungta_gate_trust_list_version", (("gate", "g1"),)] == 3
    assert ("lungta_gate_trust_list_version", (("gate", "g2"),)) not in samples  # still on its own trust file
