"""The console API against a live hub with a real broker and simulated gates."""

from __future__ import annotations

import os
import subprocess
import sys

from hub.console.roles import Role
from tests.hub.console.conftest import Client


def test_without_credentials_the_api_answers_401_and_with_a_bad_token_too(console) -> None:
    anonymous = Client(console.url)
    assert anonymous.get("/api/v1/gates").status == 401
    assert anonymous.get("/api/v1/gates").headers["www-authenticate"].startswith("Bearer")
    assert Client(console.url, "lt_not-a-token").get("/api/v1/gates").status == 401
    assert anonymous.get("/api/v1/openapi.json").status == 200


def test_a_gate_that_reports_is_listed_with_its_heartbeat_and_todays_decisions(console, gate_factory) -> None:
    gate = gate_factory("g1")
    gate.heartbeat(backlog=0, rev_seq=0, used_seq=0, clock_offset_ms=12, scanner="ok", relay="ok", disk_free_mb=9000, temperature_c=51.5)
    now_data = {"decision": "deny", "reason": "expired", "persons": 0}
    gate.publish_events(gate.make_events(2, "admission", data={"decision": "grant", "reason": "valid", "persons": 1}) + gate.make_events(1, "deny", data=now_data))
    data = console.wait_snapshot(lambda d: any(g["gate"] == "g1" and g["admissions_today"] == 2 and g["refusals_today"] == 1 and g.get("scanner") == "ok" for g in d.get("gates", [])))
    viewer = console.client(Role.VIEWER)
    listed = viewer.get("/api/v1/gates").json()["items"]
    g1 = next(g for g in listed if g["gate"] == "g1")
    assert g1["status"] == "online" and g1["decisions"] == {"valid": 2, "expired": 1} and g1["clock_offset_ms"] == 12 and g1["temperature_c"] == 51.5
    assert data["totals"]["admissions_today"] == 2
    one = viewer.get("/api/v1/gates/g1").json()
    assert one["gate"] == "g1" and one["history"], "the gate's health history is shown"
    assert viewer.get("/api/v1/gates/nope").status == 404


def test_a_revocation_is_listed_with_who_and_why_and_audited(console) -> None:
    operator = console.client(Role.OPERATOR)
    ticket = os.urandom(16).hex()
    answer = operator.post("/api/v1/revocations", {"ticket_ids": [ticket], "reason": "refund"})
    assert answer.status == 201 and answer.json()["revoked"] == 1
    listed = operator.get("/api/v1/revocations").json()["items"]
    assert listed[0]["ticket_id"] == ticket and listed[0]["reason"] == "refund" and listed[0]["actor"] == "test-operator"
    audit = operator.get("/api/v1/audit").json()["items"]
    assert audit[0]["action"] == "revoke" and audit[0]["actor"] == "test-operator" and audit[0]["role"] == "operator"
    shown = operator.get(f"/api/v1/tickets/{ticket}").json()
    assert shown["revocation"]["revoked"] and shown["events"] == []
    undone = operator.post("/api/v1/unrevocations", {"ticket_ids": [ticket], "reason": "refund cancelled"})
    assert undone.status == 200 and undone.json()["unrevoked"] == 1
    assert not operator.get(f"/api/v1/tickets/{ticket}").json()["revocation"]["revoked"]
    latest = operator.get("/api/v1/revocations").json()["items"][0]
    assert (latest["ticket_id"], latest["action"], latest["reason"], latest["actor"]) == (ticket, "unrevoke", "refund cancelled", "test-operator")


def test_ten_thousand_tickets_are_revoked_in_one_call(console) -> None:
    operator = console.client(Role.OPERATOR)
    tickets = [os.urandom(16).hex() for _ in range(10_000)]
    answer = operator.post("/api/v1/revocations", {"ticket_ids": tickets, "reason": "event cancelled"}, headers={"Idempotency-Key": "cancel-2026-12-01"})
    assert answer.status == 201 and answer.json()["revoked"] == 10_000
    assert operator.get(f"/api/v1/tickets/{tickets[-1]}").json()["revocation"]["revoked"]
    assert len(operator.get("/api/v1/revocations?limit=1000").json()["items"]) == 1000


def test_bad_requests_get_a_4xx_that_names_the_problem(console) -> None:
    operator = console.client(Role.OPERATOR)
    assert operator.post("/api/v1/revocations", {"ticket_ids": ["zz"], "reason": "x"}).status == 422
    assert operator.post("/api/v1/revocations", {"ticket_ids": [os.urandom(16).hex()] * 10_001, "reason": "x"}).status == 422
    assert "reason" in operator.post("/api/v1/revocations", {"ticket_ids": [os.urandom(16).hex()]}).json()["error"]
    unknown_gate = operator.post("/api/v1/commands", {"command": "emergency_open", "args": {"on": True}, "gates": ["nowhere"]})
    assert unknown_gate.status == 404 and "nowhere" in unknown_gate.json()["error"]
    assert operator.post("/api/v1/commands", {"command": "self_destruct", "site": True}).status == 422
    for args in ({"on": 1}, {"on": "false"}, {"reason": "drill"}):  # never read as "off": refused, nothing sent
        refused = operator.post("/api/v1/commands", {"command": "emergency_open", "args": args, "site": True})
        assert refused.status == 422 and "on" in refused.json()["error"], refused.json()
    assert "site" in operator.post("/api/v1/commands", {"command": "emergency_open", "args": {"on": True}, "site": 1}).json()["error"]
    raw = operator.request("POST", "/api/v1/quotas", headers={"Content-Type": "application/json"})
    assert raw.status in (400, 422)
    assert operator.request("DELETE", "/api/v1/gates").status == 405
    for path in ("/static/..%2Fserver.py", "/static/%2E%2E%2F%2E%2E%2Fconfig.py", "/static/..%2F..%2F..%2Fhub.db"):
        assert Client(console.url).get(path).status == 404, f"{path}: nothing outside the dashboard's folder is served"


def test_an_emergency_command_reaches_the_gate_signed(console, gate_factory) -> None:
    gate = gate_factory("g2")
    gate.heartbeat(scanner="ok", relay="ok")
    console.wait_snapshot(lambda d: any(g["gate"] == "g2" for g in d.get("gates", [])))
    answer = console.client(Role.OPERATOR).post("/api/v1/commands", {"command": "emergency_open", "args": {"on": True, "reason": "fire drill"}, "site": True})
    assert answer.status == 201 and answer.json()["sent"][0]["gate"] == "g2"
    assert gate.wait_for(lambda view: any(m.stream == "command/g2" and m.body.get("name") == "emergency_open" for m in view.accepted), 10), "the gate got the signed command"


def test_quotas_are_set_listed_and_shown(console) -> None:
    operator = console.client(Role.OPERATOR)
    assert operator.post("/api/v1/quotas", {"date": "2026-12-01", "slot": "09:00-10:00", "cap": 500}).status == 200
    assert operator.post("/api/v1/quotas", {"date": "2026-12-01", "slot": "09:30-10:30", "cap": 5}).status == 409
    listed = operator.get("/api/v1/quotas?date=2026-12-01").json()["items"]
    assert listed[0]["cap"] == 500
    assert operator.get("/api/v1/quotas/2026-12-01/09:00-10:00").json()["cap"] == 500
    assert operator.get("/api/v1/quotas/2026-12-01/11:00-12:00").status == 404


def test_reports_come_as_json_and_as_csv_with_a_header(console, gate_factory) -> None:
    gate = gate_factory("g3")
    gate.publish_events(gate.make_events(3, "admission", data={"decision": "grant", "reason": "valid", "persons": 2}))
    console.wait_snapshot(lambda d: any(g["gate"] == "g3" and g["admissions_today"] == 3 for g in d.get("gates", [])))
    viewer = console.client(Role.VIEWER)
    totals = viewer.get("/api/v1/reports/daily_totals").json()["items"]
    assert totals == [{"date": totals[0]["date"], "gate": "g3", "admissions": 3, "persons": 6, "refusals": 0, "exits": 0}]
    csv = viewer.get("/api/v1/reports/refusals_by_reason?format=csv")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv") and csv.body.decode("utf-8-sig").startswith("gate,reason,refusals")
    events = viewer.get("/api/v1/events?gate=g3&limit=2").json()
    assert len(events["items"]) == 2 and events["next_before"]
    rest = viewer.get(f"/api/v1/events?gate=g3&limit=2&before={events['next_before']}").json()["items"]
    assert len(rest) == 1


def test_logins_are_rate_limited(console) -> None:
    done = subprocess.run([sys.executable, "-m", "lungta", "hub", "user", "add", "--config", str(console.config_path), "--role", "viewer", "ana"],
                          input="correct horse battery\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    anonymous = Client(console.url)
    ok = anonymous.post("/api/v1/login", {"name": "ana", "password": "correct horse battery"})
    assert ok.status == 200 and "lungta_session=" in ok.headers["set-cookie"] and "HttpOnly" in ok.headers["set-cookie"]
    session = Client(console.url, ok.json()["token"])
    assert session.get("/api/v1/me").json()["role"] == "viewer"
    assert session.post("/api/v1/logout").status == 200 and session.get("/api/v1/me").status == 401, "logged out: the session is gone"
    audit = console.client(Role.ADMIN).get("/api/v1/audit").json()["items"]
    assert [(e["action"], e["actor"], e["via"]) for e in audit if e["actor"] == "ana"][:2] == [("logout", "ana", "user"), ("login", "ana", "user")]
    statuses = [anonymous.post("/api/v1/login", {"name": "ana", "password": "wrong password"}).status for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert anonymous.post("/api/v1/login", {"name": "ana", "password": "correct horse battery"}).status == 429, "locked out even with the right password"


def test_hub_run_with_the_console_port_taken_stops_with_one_line(tmp_path, broker, hub_key) -> None:
    import socket

    from tests.hub.console.conftest import console_config

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = console_config(tmp_path / "hub", broker, hub_key)
        path.write_text(path.read_text(encoding="utf-8").replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'), encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "lungta", "hub", "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode == 2 and len(errors) == 1 and "[http] listen" in errors[0] and "Traceback" not in result.stderr, result.stderr


def test_a_connection_that_sends_nothing_is_closed_and_frees_its_thread(console) -> None:
    import socket

    console.server.httpd.RequestHandlerClass.timeout = 0.5  # IDLE_S, shortened for the test
    host, port = console.server.httpd.server_address[:2]
    with socket.create_connection((host, port)) as idle:
        idle.settimeout(10)
        assert idle.recv(1) == b"", "the server closed the idle connection"
