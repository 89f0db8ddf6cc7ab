"""Prometheus ``/metrics``: per gate and the hub itself, read from the live feed's snapshot.

A custom collector over the snapshot, in a registry of its own (no global
state): a scrape costs no query, and Prometheus sees the same figures as
the dashboard. Today's decision counts are counters that restart at local
midnight (Prometheus' ``increase()`` handles the reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .live import LiveFeed

STATUSES = ("online", "stale", "offline", "unknown")


class FeedCollector(Collector):
    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterator:
        data = self.feed.snapshot.data
        gates = data.get("gates", [])
        yield from self._gates(gates)
        yield from self._hub(data)

    def _gates(self, gates: list[dict]) -> Iterator:
        up = GaugeMetricFamily("lungta_gate_up", "1 when the gate is online (connected and heard from lately)", labels=["gate"])
        state = GaugeMetricFamily("lungta_gate_status", "1 for the gate's current status", labels=["gate", "status"])
        decisions = CounterMetricFamily("lungta_gate_decisions", "decisions today by reason (restarts at local midnight)", labels=["gate", "reason"])
        gauges = {
            "rev_lag": GaugeMetricFamily("lungta_gate_revocation_lag", "revocation deltas the gate is behind", labels=["gate"]),
            "used_lag": GaugeMetricFamily("lungta_gate_used_lag", "used-mark deltas the gate is behind", labels=["gate"]),
            "backlog": GaugeMetricFamily("lungta_gate_backlog", "events the gate holds unacknowledged", labels=["gate"]),
            "clock_offset_ms": GaugeMetricFamily("lungta_gate_clock_offset_seconds", "gate clock minus hub clock", labels=["gate"]),
            "disk_free_mb": GaugeMetricFamily("lungta_gate_disk_free_bytes", "free disk at the gate's state directory", labels=["gate"]),
            "temperature_c": GaugeMetricFamily("lungta_gate_temperature_celsius", "SoC temperature", labels=["gate"]),
            "trust_version": GaugeMetricFamily("lungta_gate_trust_list_version", "version of the trust list (issuer keys) the gate has installed", labels=["gate"]),
            "last_seen_ms": GaugeMetricFamily("lungta_gate_last_seen_timestamp_seconds", "when the hub last heard from the gate", labels=["gate"]),
            "per_minute": GaugeMetricFamily("lungta_gate_admissions_per_minute", "persons admitted in the last minute", labels=["gate"]),
        }
        scale = {"clock_offset_ms": 0.001, "disk_free_mb": 2**20, "last_seen_ms": 0.001}
        emergency = GaugeMetricFamily("lungta_gate_emergency", "1 while the gate is in emergency open", labels=["gate"])
        counters = {  # the hub's durable per-gate records (GateHealth), not reset at midnight
            "resets": CounterMetricFamily("lungta_gate_state_resets", "times the hub told the gate its state went backwards", labels=["gate"]),
            "refused": CounterMetricFamily("lungta_gate_refused_messages", "gate messages the hub refused as invalid", labels=["gate"]),
        }
        for gate in gates:
            name = gate["gate"]
            up.add_metric([name], float(gate["status"] == "online"))
            for status in STATUSES:
                state.add_metric([name, status], float(gate["status"] == status))
            for reason, count in gate.get("decisions", {}).items():
                decisions.add_metric([name, reason], count)
            for key, family in gauges.items():
                value = gate.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    family.add_metric([name], value * scale.get(key, 1))
            emergency.add_metric([name], float(bool(gate.get("emergency"))))
            for key, counter in counters.items():
                value = gate.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    counter.add_metric([name], value)
        yield from (up, state, decisions, *gauges.values(), emergency, *counters.values())

    def _hub(self, data: dict) -> Iterator:
        hub = data.get("hub", {})
        for key, help_text in (("messages", "MQTT messages handled"), ("events_stored", "gate events stored (new)"), ("duplicates", "resent events recognised"),
                               ("malformed", "messages refused"), ("acks_sent", "acks published"), ("outbox_published", "outbox rows the broker took"),
                               ("refused", "gate messages refused as invalid"), ("rate_limited", "gate messages dropped by the rate limit"),
                               ("unrelayed", "gate events stored but not relayed (used mark, quota): the hub's check refused them"), ("pongs", "signed pongs sent in answer to gate pings"),
                               ("batches", "batches of gate messages handled"),
                               ("batch_seconds", "seconds spent handling batches (decode, commit, PUBACK, publish); over batches: the mean batch time")):
            if key in hub:
                yield CounterMetricFamily(f"lungta_hub_{key}", help_text, value=hub[key])
        for key, name, help_text in (("outbox_depth", "lungta_hub_outbox_depth", "outbox rows not yet published"),
                                     ("store_bytes", "lungta_hub_store_bytes", "hub database and WAL size")):
            if key in hub:
                yield GaugeMetricFamily(name, help_text, value=hub[key])
        yield GaugeMetricFamily("lungta_hub_broker_up", "1 while the hub is connected to the broker", value=float(bool(data.get("broker_up"))))
        alerts = GaugeMetricFamily("lungta_alerts", "alerts raised now, by kind and severity", labels=["kind", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for alert in data.get("alerts", []):
            counts[alert["kind"], alert["severity"]] = counts.get((alert["kind"], alert["severity"]), 0) + 1
        for (kind, severity), count in sorted(counts.items()):
            alerts.add_metric([kind, severity], count)
        yield alerts


def metrics_renderer(feed: LiveFeed) -> Callable[[], bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedCollector(feed))
    return lambda: generate_latest(registry)
