"""Alerts: each kind the issue lists, raised from a gate's view; the grace before lags count; acknowledgement;
and a broker the hub cannot reach told apart from gates that went offline."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from hub.console.alerts import AlertBook, AlertKind, conditions
from hub.console.roles import Role
from hub.console.settings import HttpSettings

SETTINGS = HttpSettings(offline_alert_s=30, clock_offset_alert_ms=5000, lag_alert=1, backlog_alert=1000, disk_low_mb=500)
HEALTHY = {"gate": "g1", "status": "online", "scanner": "ok", "relay": "ok", "emergency": False, "clock_offset_ms": 12, "rev_lag": 0, "used_lag": 0,
           "backlog": 0, "disk_free_mb": 9000, "state_reset": False, "flagged_today": 0, "settings_mismatch": [], "trust_head": None, "trust_version": None}


def _kinds(**changes: object) -> set[AlertKind]:
    return {kind for kind, _ in conditions({**HEALTHY, **changes}, SETTINGS)}


def test_a_healthy_online_gate_raises_nothing() -> None:
    assert _kinds() == set()


@pytest.mark.parametrize(("changes", "kind"), [
    ({"status": "offline", "cause": "its connection ended"}, AlertKind.GATE_OFFLINE),
    ({"status": "stale"}, AlertKind.GATE_STALE),
    ({"scanner": "camera: no frames for 30 s"}, AlertKind.SCANNER_DOWN),
    ({"relay": "fault"}, AlertKind.RELAY_ERROR),
    ({"emergency": True, "relay": "emergency: fire drill"}, AlertKind.EMERGENCY_ON),
    ({"clock_offset_ms": -7200}, AlertKind.CLOCK_OFFSET),
    ({"rev_lag": 3}, AlertKind.REVOCATION_LAG),
    ({"used_lag": 2}, AlertKind.USED_LAG),
    ({"backlog": 5000}, AlertKind.BACKLOG),
    ({"disk_free_mb": 120}, AlertKind.DISK_LOW),
    ({"state_reset": True, "resets": 1, "reset_ms": 1}, AlertKind.STATE_RESET),
    ({"flagged_today": 4}, AlertKind.FLAGGED),
    ({"trust_head": 2, "trust_version": 1}, AlertKind.TRUST_BEHIND),
    ({"session_takeovers": 2}, AlertKind.GATE_TAKEN_OVER),
])
def test_each_listed_condition_raises_its_alert_kind(changes: dict, kind: AlertKind) -> None:
    assert kind in _kinds(**changes)


def test_device_figures_of_a_gate_that_is_away_are_not_news() -> None:
    """Its last heartbeat's disk and clock are old: only the offline alert, not a pile of stale faults."""
    assert _kinds(status="offline", disk_free_mb=1, clock_offset_ms=99_000, rev_lag=9) == {AlertKind.GATE_OFFLINE}


def test_a_lag_counts_only_after_the_grace_and_an_offline_gate_at_once() -> None:
    book = AlertBook(SETTINGS)
    lagging = [{**HEALTHY, "rev_lag": 2}, {**HEALTHY, "gate": "g2", "status": "offline", "cause": "x"}]
    first = book.update(lagging, True, 1_000_000, {})
    assert [a.kind for a in first] == [AlertKind.GATE_OFFLINE], "a delta in flight is no alarm; a gate gone is, at once"
    later = book.update(lagging, True, 1_000_000 + 30_000, {})
    assert {a.kind for a in later} == {AlertKind.GATE_OFFLINE, AlertKind.REVOCATION_LAG}


def test_an_alert_that_clears_and_returns_is_a_new_unacknowledged_alert() -> None:
    book = AlertBook(SETTINGS)
    down = [{**HEALTHY, "status": "offline", "cause": "x"}]
    alert = book.update(down, True, 1000, {})[0]
    acked = book.update(down, True, 2000, {alert.id: ("dolma", 1500)})[0]
    assert acked.id == alert.id and acked.acknowledged_by == "dolma"
    assert book.update([HEALTHY], True, 3000, {alert.id: ("dolma", 1500)}) == []
    again = book.update(down, True, 4000, {alert.id: ("dolma", 1500)})[0]
    assert again.id != alert.id and again.acknowledged_by is None


def test_an_operator_acknowledges_an_alert_it_stays_listed_and_the_ack_is_audited(console, gate_factory) -> None:
    gate_factory("g1").heartbeat(backlog=0, rev_seq=0, used_seq=0, scanner="ok", relay="ok", disk_free_mb=50)
    data = console.wait_snapshot(lambda d: any(a["kind"] == "disk_low" and a["gate"] == "g1" for a in d.get("alerts", [])))
    alert = next(a for a in data["alerts"] if a["kind"] == "disk_low")
    assert console.client(Role.VIEWER).post(f"/api/v1/alerts/{alert['id']}/ack").status == 403
    operator = console.client(Role.OPERATOR)
    assert operator.post("/api/v1/alerts/disk_low:g9:1/ack").status == 404
    answer = operator.post(f"/api/v1/alerts/{quote(alert['id'], safe='')}/ack")  # as the dashboard sends it: encodeURIComponent
    assert answer.status == 200 and answer.json()["acknowledged_by"] == "test-operator"
    console.wait_snapshot(lambda d: any(a["id"] == alert["id"] and a["acknowledged_by"] == "test-operator" for a in d.get("alerts", [])))
    listed = operator.get("/api/v1/alerts").json()["items"]
    assert any(a["id"] == alert["id"] and a["acknowledged_by"] == "test-operator" for a in listed), "acknowledged, still listed while the disk is low"
    audit = operator.get("/api/v1/audit").json()["items"]
    assert audit[0]["action"] == "ackalert" and audit[0]["detail"] == {"alert": alert["id"]}


def test_a_broker_the_hub_cannot_reach_is_not_shown_as_gates_offline(console, gate_factory, broker, caplog) -> None:
    """The issue's first complaint: with the broker down the gates keep deciding; the console says the hub is blind, not that they dropped."""
    caplog.set_level(logging.INFO, logger="hub.gates")
    gate_factory("g1").heartbeat(scanner="ok", relay="ok")
    console.wait_snapshot(lambda d: any(g["gate"] == "g1" and g["status"] == "online" for g in d.get("gates", [])))
    broker.stop()
    data = console.wait_snapshot(lambda d: d.get("broker_up") is False and any(g["gate"] == "g1" and g["status"] == "unknown" for g in d["gates"]))
    assert [a["kind"] for a in data["alerts"]] == ["broker_unreachable"], "no gate_offline / gate_stale alert while the hub is blind"
    listed = console.client(Role.VIEWER).get("/api/v1/gates").json()
    assert listed["broker_up"] is False
    g1 = next(g for g in listed["items"] if g["gate"] == "g1")
    assert g1["status"] == "unknown" and g1["cause"] == "hub cannot reach the broker"
    logged = [r.getMessage() for r in caplog.records if r.name == "hub.gates" and "gate=g1 status=unknown" in r.getMessage()]
    assert logged and "cause=hub cannot reach the broker" in logged[0]


def _backlogs(book: AlertBook, samples: list[tuple[int, int]]) -> list[set[AlertKind]]:
    """Each (ms, backlog) as a new heartbeat of g1: the kinds raised after it."""
    return [{a.kind for a in book.update([{**HEALTHY, "backlog": backlog}], True, at_ms, {})} for at_ms, backlog in samples]


def test_a_backlog_that_only_grows_raises_backlog_growing_after_the_grace() -> None:
    raised = _backlogs(AlertBook(SETTINGS), [(0, 0), (10_000, 4), (20_000, 9), (30_000, 15), (40_000, 22)])
    assert raised == [set(), set(), set(), set(), {AlertKind.BACKLOG}], "held from 10 s (up from 0), raised 30 s later"


def test_a_backlog_the_hub_keeps_acknowledging_raises_nothing() -> None:
    samples = [(at * 10_000, backlog) for at, backlog in enumerate([0, 3, 1, 4, 2, 5, 0, 2, 1, 3])]
    assert _backlogs(AlertBook(SETTINGS), samples) == [set()] * len(samples)
