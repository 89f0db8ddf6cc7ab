"""Reports, event filters and the ticket view, from events real gates' messages put in the hub's store."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from hub.console.roles import Role
from protocol.claims import TicketType
from protocol.ticket import issue_ticket, read_ticket
from testkit.tickets import make_claims

GRANT = {"decision": "grant", "reason": "valid", "persons": 1}


def _admissions(gate, tickets: list[str], **data: object) -> list:
    """One admission per ticket text, carrying it as a gate's admission does (gate/validator.py)."""
    ids = [read_ticket(text).claims.ticket_id for text in tickets]
    return [event for text, ticket_id in zip(tickets, ids) for event in gate.make_events(1, "admission", [ticket_id], {**GRANT, **data, "ticket": text})]


def test_admissions_by_hour_split_by_gate_and_ticket_type_as_json_and_csv(console, gate_factory, issuer_key) -> None:
    adult, child = (issue_ticket(make_claims(ticket_type=kind), issuer_key) for kind in (TicketType.ADULT, TicketType.CHILD))
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    g1.publish_events(_admissions(g1, [adult, child]))
    g2.publish_events(_admissions(g2, [issue_ticket(make_claims(ticket_type=TicketType.ADULT), issuer_key)], persons=3))
    events = g1.make_events(1, "deny", data={"decision": "deny", "reason": "expired", "persons": 0})
    g1.publish_events(events)
    console.wait_snapshot(lambda d: sum(g["admissions_today"] + g["refusals_today"] for g in d.get("gates", [])) == 4)
    hour = datetime.fromtimestamp(events[0].at_ms / 1000, console.hub.config.timezone).strftime("%H:00")
    viewer = console.client(Role.VIEWER)
    rows = viewer.get("/api/v1/reports/admissions_by_hour").json()["items"]
    assert rows == [{"hour": hour, "gate": "g1", "ticket_type": "adult", "persons": 1}, {"hour": hour, "gate": "g1", "ticket_type": "child", "persons": 1},
                    {"hour": hour, "gate": "g2", "ticket_type": "adult", "persons": 3}]
    as_csv = viewer.get("/api/v1/reports/admissions_by_hour?format=csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    assert list(csv.DictReader(io.StringIO(as_csv.body.decode("utf-8-sig")))) == [{k: str(v) for k, v in row.items()} for row in rows]
    refusals = viewer.get("/api/v1/reports/refusals_by_reason").json()["items"]
    assert refusals == [{"gate": "g1", "reason": "expired", "refusals": 1}]


def test_flagged_admissions_are_reported_with_why(console, gate_factory) -> None:
    gate = gate_factory("g1")
    gate.publish_events(gate.make_events(1, "admission", data={**GRANT, "flagged": True, "clock_trusted": False, "hub_online": False})
                        + gate.make_events(2, "admission", data=GRANT))
    console.wait_snapshot(lambda d: any(g["gate"] == "g1" and g["admissions_today"] == 3 for g in d.get("gates", [])))
    flagged = console.client(Role.VIEWER).get("/api/v1/reports/flagged").json()["items"]
    assert len(flagged) == 1 and flagged[0]["gate"] == "g1" and flagged[0]["clock_trusted"] is False and flagged[0]["hub_online"] is False


def test_events_are_filtered_by_gate_kind_reason_and_time(console, gate_factory) -> None:
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    first = g1.make_events(2, "admission", data=GRANT)
    g1.publish_events(first + g1.make_events(1, "deny", data={"decision": "deny", "reason": "revoked", "persons": 0}))
    g2.publish_events(g2.make_events(1, "deny", data={"decision": "deny", "reason": "expired", "persons": 0}))
    console.wait_snapshot(lambda d: sum(g["admissions_today"] + g["refusals_today"] for g in d.get("gates", [])) == 4)
    viewer = console.client(Role.VIEWER)

    def listed(query: str) -> list[tuple[str, str, str]]:
        return sorted((e["gate"], e["kind"], e["reason"]) for e in viewer.get(f"/api/v1/events?{query}").json()["items"])

    assert listed("kind=deny") == [("g1", "deny", "revoked"), ("g2", "deny", "expired")]
    assert listed("reason=expired") == [("g2", "deny", "expired")]
    assert listed("gate=g1&kind=admission") == [("g1", "admission", "valid")] * 2
    assert listed(f"gate=g1&until={first[0].at_ms}") == []
    assert len(listed(f"since={first[0].at_ms}")) == 4
    assert viewer.get("/api/v1/events?since=yesterday").status == 422


def test_a_ticket_shows_every_event_across_gates(console, gate_factory, issuer_key) -> None:
    text = issue_ticket(make_claims(ticket_type=TicketType.STUDENT), issuer_key)
    ticket_id = read_ticket(text).claims.ticket_id
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    g1.publish_events(_admissions(g1, [text]))
    console.wait_snapshot(lambda d: any(g["gate"] == "g1" and g["admissions_today"] == 1 for g in d.get("gates", [])))
    g2.publish_events(g2.make_events(1, "deny", [ticket_id], {"decision": "deny", "reason": "already_used", "persons": 0}))
    console.wait_snapshot(lambda d: any(g["gate"] == "g2" and g["refusals_today"] == 1 for g in d.get("gates", [])))
    shown = console.client(Role.VIEWER).get(f"/api/v1/tickets/{ticket_id.hex()}").json()
    assert shown["used"] is True and shown["admissions"] == 1
    assert [(e["gate"], e["kind"], e["reason"]) for e in shown["events"]] == [("g1", "admission", "valid"), ("g2", "deny", "already_used")]
    assert shown["events"][0]["ticket_type"] == "student"
    assert "ticket" not in shown["events"][0], "the signed ticket text itself is not handed out"
