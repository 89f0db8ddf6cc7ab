"""Gate health over the real broker (birth, Last Will, heartbeat) and the bdseq rule itself."""

from __future__ import annotations

import json

from hub.health import apply_report
from hub.store import GateHealth
from protocol.gate_messages import HealthReport, encode_health
from protocol.topics import gate_topic
from tests.hub.conftest import TIMEOUT
from tests.hub.test_sync import hub_command


def gates_json(config_path) -> dict[str, dict]:
    rows = [json.loads(line) for line in hub_command("gates", "--config", str(config_path), "--json").splitlines()]
    return {row["gate"]: row for row in rows}


def test_birth_heartbeat_and_last_will_show_in_hub_gates(hub, hub_config_path, gate_factory):
    gate = gate_factory("g1", bdseq=3)
    assert hub.service.wait_for(lambda stats: stats.reports >= 1, TIMEOUT)
    row = gates_json(hub_config_path)["g1"]
    assert (row["status"], row["version"], row["bdseq"]) == ("online", "sim-1", 3)
    gate.heartbeat(version="1.2.0", backlog=17, rev_seq=0, clock_offset_ms=-40, scanner="ok", relay="ok")
    assert hub.service.wait_for(lambda stats: stats.reports >= 2, TIMEOUT)
    row = gates_json(hub_config_path)["g1"]
    assert (row["backlog"], row["rev_lag"], row["clock_offset_ms"], row["version"]) == (17, 0, -40, "1.2.0")
    gate.disconnect(with_will=True)
    assert hub.service.wait_for(lambda stats: stats.reports >= 3, TIMEOUT)
    assert gates_json(hub_config_path)["g1"]["status"] == "offline"


def test_a_late_death_of_an_older_connection_does_not_mark_the_gate_offline(hub, hub_config_path, gate_factory):
    gate = gate_factory("g2", bdseq=8)
    assert hub.service.wait_for(lambda stats: stats.reports >= 1, TIMEOUT)
    gate.publish_raw(gate_topic("potala", "g2", "death"), encode_health({"bdseq": 7}))
    gate.heartbeat(backlog=0)
    assert hub.service.wait_for(lambda stats: stats.reports >= 3, TIMEOUT)
    assert gates_json(hub_config_path)["g2"]["status"] == "online"


def test_gates_table_lists_every_gate_with_headers(hub, hub_config_path, gate_factory):
    gate_factory("g1"), gate_factory("g3")
    assert hub.service.wait_for(lambda stats: stats.reports >= 2, TIMEOUT)
    table = hub_command("gates", "--config", str(hub_config_path)).splitlines()
    assert table[0].split()[:4] == ["GATE", "STATUS", "LAST_SEEN", "VERSION"]
    assert [line.split()[:2] for line in table[1:]] == [["g1", "online"], ["g3", "online"]]


def report(kind: str, bdseq: int | None) -> HealthReport:
    return HealthReport(kind, bdseq, None, {} if bdseq is None else {"bdseq": bdseq})


def test_bdseq_rule_orders_births_deaths_and_heartbeats():
    born = apply_report(None, "g1", report("birth", 5), 1000)
    assert born.online and born.bdseq == 5
    assert apply_report(born, "g1", report("death", 4), 2000) is None, "stale death ignored"
    dead = apply_report(born, "g1", report("death", 5), 3000)
    assert not dead.online and dead.died_ms == 3000
    assert not apply_report(dead, "g1", report("heartbeat", 5), 4000).online, "a late heartbeat of the dead connection"
    assert apply_report(dead, "g1", report("heartbeat", 6), 5000).online, "a newer connection whose birth was lost"
    assert apply_report(dead, "g1", report("death", 5), 6000) is None, "duplicate death"


def test_heartbeat_without_bdseq_keeps_the_online_flag():
    dead = GateHealth("g1", online=False, bdseq=2, last_seen_ms=0)
    beat = apply_report(dead, "g1", report("heartbeat", None), 10)
    assert not beat.online and beat.last_seen_ms == 10
