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


def test_a_gate_behind_the_hubs_trust_list_raises_an_alert_until_it_catches_up(console, gate_factory) -> None:
    """After a sales key is withdrawn, the operator is told which gates still hold an older list (or none)."""
    import sqlite3
    import time

    from nacl.signing import SigningKey

    from hub.trustlist import record_trust_list
    from protocol.trust import TrustedKey
    from protocol.trustlist import new_trust_list, sign_trust_list

    root = SigningKey.generate()
    site = console.hub.config.site
    with sqlite3.connect(console.hub.config.database) as db:
        for version in (1, 2):
            signed = sign_trust_list(new_trust_list(site, version, int(time.time()), [TrustedKey(f"sales{version}", SigningKey.generate().verify_key)]), root)
            record_trust_list(db, signed, root.verify_key, site, int(time.time() * 1000))
    gates = {name: gate_factory(name) for name in ("g1", "g2", "g3")}
    for name, version in (("g1", 2), ("g2", 1), ("g3", None)):
        gates[name].heartbeat(scanner="ok", relay="ok", trust_version=version)

    def behind(data: dict) -> set[str]:
        return {alert["gate"] for alert in data.get("alerts", []) if alert["kind"] == "trust_list_behind"}

    data = console.wait_snapshot(lambda d: behind(d) == {"g2", "g3"})
    assert next(g for g in data["gates"] if g["gate"] == "g2")["trust_head"] == 2
    gates["g2"].heartbeat(scanner="ok", relay="ok", trust_version=2)
    console.wait_snapshot(lambda d: behind(d) == {"g3"})
