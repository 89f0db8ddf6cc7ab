"""The dashboard's actions in a real browser against a live hub: acknowledge, quota, emergency; every asset from the hub."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from hub.console.actions import AddAccount
from hub.console.roles import Role
from lungta.console_cli import cli_perform
from tests.hub.console.conftest import screenshot

PASSWORD = "control room 24h"


def _login(page, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#login-form input[name=name]", name)
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")


def test_an_operator_acknowledges_sets_a_quota_and_opens_a_gate_from_the_dashboard(console, gate_factory, browser_page) -> None:
    gate = gate_factory("g1")
    gate.heartbeat(scanner="ok", relay="ok")
    gone = gate_factory("g2")
    gone.heartbeat(scanner="ok", relay="ok")
    console.wait_snapshot(lambda d: any(g["gate"] == "g2" for g in d.get("gates", [])))
    gone.disconnect(with_will=True)
    cli_perform(console.hub.config, AddAccount("dolma", Role.OPERATOR, PASSWORD))
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _login(page, console.url, "dolma")

    alert = page.wait_for_selector('.alerts li[data-kind="gate_offline"][data-gate="g2"][data-acked="false"] button', timeout=10_000)
    alert.click()
    page.wait_for_selector('.alerts li[data-kind="gate_offline"][data-gate="g2"][data-acked="true"]', timeout=10_000)
    assert any(a["kind"] == "gate_offline" and a["acknowledged_by"] == "dolma" for a in console.server.console.feed.snapshot.data["alerts"])

    page.click('details[data-needs="quota"] summary')
    page.fill("#quota-form input[name=date]", time.strftime("%Y-%m-%d"))
    page.fill("#quota-form input[name=slot]", "00:00-23:59")
    page.fill("#quota-form input[name=cap]", "750")
    page.click("#quota-form button[type=submit]")
    page.wait_for_selector('#quotas .quota:has-text("00:00-23:59  0 / 750")', timeout=10_000)

    page.click('details[data-needs="command"] summary')
    page.select_option("#emergency-target", "g1")
    page.fill("#emergency-form input[name=reason]", "fire drill")
    page.once("dialog", lambda dialog: dialog.accept())  # "open the gates?": the operator confirms
    page.click('#emergency-form button[value="true"]')
    assert gate.wait_for(lambda view: any(m.stream == "command/g1" and m.body.get("args", {}).get("on") is True for m in view.accepted), 10), \
        "the gate got the signed emergency command"

    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('emergency_open')", timeout=10_000)
    screenshot(page, "console-actions")
    origin = urlsplit(console.url).netloc
    assert requested and all(urlsplit(url).netloc == origin for url in requested if not url.startswith("data:")), \
        f"everything from the hub, nothing from a CDN: {sorted({url for url in requested if urlsplit(url).netloc != origin})}"
    audit = console.client(Role.ADMIN).get("/api/v1/audit").json()["items"]
    assert [entry["action"] for entry in audit if entry["actor"] == "dolma"][:4] == ["sendcommand", "setquota", "ackalert", "login"]
