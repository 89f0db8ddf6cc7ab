"""/metrics for Prometheus and the hub log's gate transitions, from a live hub with simulated gates."""

from __future__ import annotations

import logging

from prometheus_client.parser import text_string_to_metric_families

from lungta.journal import JournalFormatter
from tests.hub.console.conftest import Client


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_show_each_gate_and_the_hub(console, gate_factory) -> None:
    gate = gate_factory("g1")
    gate.heartbeat(backlog=7, rev_seq=0, used_seq=0, clock_offset_ms=-1500, scanner="ok", relay="ok", disk_free_mb=100, temperature_c=60.0)
    gate.publish_events(gate.make_events(2, "deny", data={"decision": "deny", "reason": "revoked", "persons": 0}))
    console.wait_snapshot(lambda d: any(g["gate"] == "g1" and g["refusals_today"] == 2 and g.get("backlog") == 7 for g in d.get("gates", [])))
    answer = Client(console.url).get("/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = _samples(answer.body.decode())
    assert samples["lungta_gate_up", (("gate", "g1"),)] == 1
    assert samples["lungta_gate_decisions_total", (("gate", "g1"), ("reason", "revoked"))] == 2
    assert samples["lungta_gate_backlog", (("gate", "g1"),)] == 7
    assert samples["lungta_gate_clock_offset_seconds", (("gate", "g1"),)] == -1.5
    assert samples["lungta_gate_disk_free_bytes", (("gate", "g1"),)] == 100 * 2**20
    assert samples["lungta_hub_broker_up", ()] == 1
    assert samples["lungta_hub_events_stored_total", ()] >= 2
    assert samples["lungta_hub_batches_total", ()] >= 1 and samples["lungta_hub_batch_seconds_total", ()] > 0, "mean batch time = the two rates' ratio"
    assert ("lungta_alerts", (("kind", "disk_low"), ("severity", "warning"))) in samples


def test_the_hub_log_records_each_gate_going_offline_with_its_cause(console, gate_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger="hub.gates")
    gate = gate_factory("g2")
    gate.heartbeat(scanner="ok", relay="ok")
    console.wait_snapshot(lambda d: any(g["gate"] == "g2" and g["status"] == "online" for g in d.get("gates", [])))
    gate.disconnect(with_will=True)
    console.wait_snapshot(lambda d: any(g["gate"] == "g2" and g["status"] == "offline" for g in d.get("gates", [])))
    offline = [record for record in caplog.records if record.name == "hub.gates" and "gate=g2 status=offline" in record.getMessage()]
    assert offline and offline[0].levelno == logging.ERROR and "cause=its connection ended" in offline[0].getMessage()
    assert JournalFormatter().format(offline[0]).startswith("<3>ERROR hub.gates: gate=g2 status=offline"), "err: journalctl -p warning shows it"


def test_a_gate_state_reset_the_hub_recorded_raises_the_alert_and_counts(console, gate_factory) -> None:
    from hub.sqlite_store import SqliteHubStore

    gate = gate_factory("g3")
    gate.heartbeat(scanner="ok", relay="ok")
    console.wait_snapshot(lambda d: any(g["gate"] == "g3" and g["status"] == "online" and g["resets"] == 0 and not g["state_reset"] for g in d.get("gates", [])))
    assert not any(a["kind"] == "gate_state_reset" for a in console.server.console.feed.snapshot.data["alerts"])
    store = SqliteHubStore(console.hub.config.database)
    try:
        store.record_reset("g3", 1_234_000)  # what the hub writes when it tells a gate its state went backwards
    finally:
        store.close()
    data = console.wait_snapshot(lambda d: any(g["gate"] == "g3" and g["resets"] == 1 for g in d.get("gates", [])))
    view = next(g for g in data["gates"] if g["gate"] == "g3")
    assert view["state_reset"] and view["reset_ms"] == 1_234_000
    assert any(a["kind"] == "gate_state_reset" and a["gate"] == "g3" for a in data["alerts"])
    samples = _samples(Client(console.url).get("/metrics").body.decode())
    assert samples["lungta_gate_state_resets_total", (("gate", "g3"),)] == 1
