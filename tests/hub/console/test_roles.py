"""Every route x every role: 403 exactly where the role lacks the route's permission, never 401 with a valid token."""

from __future__ import annotations

import os

import pytest

from hub.console.roles import PERMISSIONS, Role

SAMPLES = {"gate": "g1", "date": "2026-12-01", "slot": "09:00-10:00", "ticket_id": "ab" * 16, "name": "daily_totals", "alert_id": "gate_offline:g1:1"}


def _body(pattern: str) -> dict | None:
    """A body the route accepts when the role may use it (so an allowed call is not refused for its content)."""
    return {
        "/api/v1/revocations": {"ticket_ids": [os.urandom(16).hex()], "reason": "matrix"},
        "/api/v1/unrevocations": {"ticket_ids": [os.urandom(16).hex()], "reason": "matrix"},
        "/api/v1/quotas": {"date": "2026-12-02", "slot": "10:00-11:00", "cap": 10},
        "/api/v1/commands": {"command": "emergency_open", "args": {"on": False}, "gates": ["g1"]},
        "/api/v1/accounts": {"name": f"u{os.urandom(4).hex()}", "role": "viewer", "password": "long enough password"},
        "/api/v1/tokens": {"name": f"t{os.urandom(4).hex()}", "role": "viewer"},
    }.get(pattern, {})


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_the_routes_its_permissions_allow(console, gate_factory, role: Role) -> None:
    gate_factory("g1").heartbeat(scanner="ok", relay="ok")
    console.wait_snapshot(lambda d: any(g["gate"] == "g1" for g in d.get("gates", [])))
    client = console.client(role)
    checked = 0
    for route in console.server.console.routes:
        if route.permission is None:
            continue
        path = route.pattern.format(**SAMPLES)
        answer = client.request(route.method, path, _body(route.pattern) if route.method == "POST" else None)
        allowed = route.permission in PERMISSIONS[role]
        if allowed:
            assert answer.status not in (401, 403), f"{role} {route.method} {path}: {answer.status} {answer.body[:200]!r}"
            assert answer.status < 500
        else:
            assert answer.status == 403, f"{role} {route.method} {path} should be forbidden, got {answer.status}"
        checked += 1
    assert checked >= 20


def test_the_live_stream_needs_credentials_and_streams_snapshots(console) -> None:
    import json
    import urllib.request

    from tests.hub.console.conftest import TIMEOUT, Client
    stream = {"Accept": "text/event-stream"}
    assert Client(console.url).get("/api/v1/live", headers=stream).status == 401
    assert console.client(Role.SALES).get("/api/v1/live", headers=stream).status == 403
    viewer = console.token(Role.VIEWER)
    assert Client(console.url, viewer).get("/api/v1/live").status == 406, "a client that did not ask for a stream gets no endless body"
    request = urllib.request.Request(console.url + "api/v1/live", headers={**stream, "Authorization": f"Bearer {viewer}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        data = next(line for line in answer if line.startswith(b"data: "))
    assert json.loads(data[6:])["site"] == console.hub.config.site


def test_a_sales_login_sees_only_the_revocation_form(console, browser_page) -> None:
    """The ticket office logs in to the same dashboard: no gate wall (it may not read it), the revoke form."""
    from hub.console.actions import AddAccount
    from lungta.console_cli import cli_perform
    cli_perform(console.hub.config, AddAccount("office", Role.SALES, "ticket office 1"))
    page = browser_page
    page.goto(console.url)
    page.fill("#login-form input[name=name]", "office")
    page.fill("#login-form input[name=password]", "ticket office 1")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#revoke-box", state="visible", timeout=10_000)
    assert page.is_hidden("#login") and page.is_hidden('details[data-needs="command"]') and page.query_selector(".tile") is None
