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


def test_a_viewer_looks_up_a_ticket_and_downloads_a_report_from_the_dashboard(console, gate_factory, browser) -> None:
    """Customer service at the phone: was this ticket used, where, why refused; the site manager's CSV."""
    ticket_id = bytes(range(16))
    g1, g2 = gate_factory("g1"), gate_factory("g2")
    g1.publish_events(g1.make_events(1, "admission", [ticket_id], {"decision": "grant", "reason": "valid", "persons": 2}))
    g2.publish_events(g2.make_events(1, "deny", [ticket_id], {"decision": "deny", "reason": "already_used", "persons": 0}))
    console.wait_snapshot(lambda d: sum(g["admissions_today"] + g["refusals_today"] for g in d.get("gates", [])) == 2)
    cli_perform(console.hub.config, AddAccount("pema", Role.VIEWER, PASSWORD))
    page = browser.new_page(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    try:
        _login(page, console.url, "pema")
        page.wait_for_selector('.tile[data-gate="g2"]', timeout=10_000)
        page.select_option("#lang", "en")
        page.click("#ticket-box summary")
        page.fill("#ticket-form input[name=ticket_id]", ticket_id.hex())
        page.click("#ticket-form button[type=submit]")
        page.wait_for_selector("#ticket-events li[data-kind=deny]", timeout=10_000)
        assert page.inner_text("#ticket-summary").startswith("used · 2 event(s)")
        screenshot(page, "console-ticket-lookup")
        lines = page.locator("#ticket-events li").all_inner_texts()
        assert [line.split(" · ")[1] for line in lines] == ["g1", "g2"]
        page.click("#report-box summary")
        with page.expect_download(timeout=10_000) as download:
            page.click('#report-links a[data-report="daily_totals"]')
        text = open(download.value.path(), encoding="utf-8-sig").read().splitlines()
        assert text[0] == "date,gate,admissions,persons,refusals,exits" and {line.split(",")[1] for line in text[1:]} == {"g1", "g2"}
    finally:
        page.close()


def test_with_the_broker_down_the_wall_says_the_hub_is_blind_not_that_gates_dropped(console, gate_factory, broker, browser_page) -> None:
    gate_factory("g1").heartbeat(scanner="ok", relay="ok")
    cli_perform(console.hub.config, AddAccount("dolma", Role.VIEWER, PASSWORD))
    page = browser_page
    _login(page, console.url, "dolma")
    page.wait_for_selector('.tile[data-gate="g1"][data-status="online"]', timeout=10_000)
    broker.stop()
    page.wait_for_selector('.tile[data-gate="g1"][data-status="unknown"]', timeout=10_000)
    page.wait_for_selector('#link[data-state="broker_down"]', timeout=10_000)
    assert page.query_selector('.tile[data-status="offline"]') is None
    page.wait_for_selector('.alerts li[data-kind="broker_unreachable"]', timeout=10_000)
    screenshot(page, "console-broker-down")
