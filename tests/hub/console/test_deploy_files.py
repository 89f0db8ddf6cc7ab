"""deploy/prometheus/alerts.yml and deploy/grafana/lungta.json use only metrics a live hub serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.hub.console.conftest import Client

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
METRIC = re.compile(r"\blungta_[a-z_]+\b")


def _served(console, gate_factory) -> set[str]:
    gate = gate_factory("g1")
    gate.heartbeat(backlog=0, rev_seq=0, used_seq=0, clock_offset_ms=0, scanner="ok", relay="ok", disk_free_mb=10, temperature_c=40.0)
    gate.publish_events(gate.make_events(1, "admission", data={"decision": "grant", "reason": "valid", "persons": 1}))
    console.wait_snapshot(lambda d: any(g["gate"] == "g1" and g["admissions_today"] == 1 and g.get("scanner") == "ok" for g in d.get("gates", [])))
    text = Client(console.url).get("/metrics").body.decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_alert_rules_and_dashboard_use_served_metrics(console, gate_factory) -> None:
    served = _served(console, gate_factory)
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) >= 10 and all("alert" in rule for group in rules["groups"] for rule in group["rules"])
    dashboard = json.loads((DEPLOY / "grafana" / "lungta.json").read_text(encoding="utf-8"))
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert used and used <= served, f"not served by the hub: {sorted(used - served)}"
