"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a live ``lungta hub run``,
real ``lungta gate run`` daemons and a real broker.

Screenshots are kept under the test's tmp dir (paths printed); set
LUNGTA_SCREENSHOTS=DIR to also copy them there (docs/img/ for the README).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from hub.local_broker import free_port
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket, read_ticket
from tests.conftest import make_claims
from tests.hub.conftest import write_hub_config
from tests.hub.console.processes import GateProcess, Watched, lungta

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test drives the system chromium)")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="apt-get install chromium (make sysdeps)")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
PASSWORD = "control room 24h"


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")
    if os.environ.get("LUNGTA_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["LUNGTA_SCREENSHOTS"]) / path.name)
    return path


@pytest.fixture
def site(tmp_path: Path, broker, hub_key, issuer_key):
    """A hub process with its console on a free port, and gates g1, g2 as daemons."""
    port = free_port()
    config = write_hub_config(tmp_path / "hub", broker, hub_key, heartbeat_interval_s=1)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[http]\nlisten = "127.0.0.1:{port}"\noffline_alert_s = 2\n')
    hub_pub = tmp_path / "hub" / "keys" / "hub.pub"
    _, issuer_pub = write_key_pair(issuer_key, tmp_path / "issuer", "sales")
    import subprocess
    added = subprocess.run(lungta("hub", "user", "add", "--config", str(config), "--role", "operator", "dolma"), input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    hub = Watched(lungta("hub", "run", "--config", str(config)), "hub")
    gates = {}
    try:
        hub.wait_line("console listening on")
        for name in ("g1", "g2"):
            gates[name] = GateProcess(tmp_path / name, broker.site, name, broker, issuer_pub, hub_pub)
        for gate in gates.values():
            gate.watched.wait_line("open")  # the scanner has its port
        yield f"http://127.0.0.1:{port}/", gates
    finally:
        for gate in gates.values():
            gate.close()
        hub.stop()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def _login(page, url: str) -> None:
    page.goto(url)
    page.fill("#login-form input[name=name]", "dolma")
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")


def test_a_killed_gate_goes_offline_with_an_alert_and_a_ui_revocation_makes_a_gate_refuse(site, browser, tmp_path, issuer_key) -> None:
    url, gates = site
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    _login(page, url)
    for name in gates:
        page.wait_for_selector(f'.tile[data-gate="{name}"][data-status="online"]', timeout=20_000)
    now = int(time.time())
    admitted = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    gates["g1"].watched.wait_line("GRANT", after=gates["g1"].scan(admitted))
    page.wait_for_function("() => Number(document.querySelector('.total[data-key=persons_today] b').textContent) >= 1", timeout=5_000)
    _shot(page, tmp_path, "console-wall")

    killed_at = time.monotonic()
    gates["g2"].watched.kill()
    page.wait_for_selector('.tile[data-gate="g2"][data-status="offline"]', timeout=5_000)
    page.wait_for_selector('.alerts li[data-kind="gate_offline"][data-gate="g2"]', timeout=max(100, int((5 - (time.monotonic() - killed_at)) * 1000)))
    assert time.monotonic() - killed_at < 5, "offline tile and alert within 5 s of the kill"
    _shot(page, tmp_path, "console-gate-down")

    refunded = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    page.click("#revoke-box summary")
    page.fill("#revoke-form textarea[name=ticket_ids]", read_ticket(refunded).claims.ticket_id.hex())
    page.fill("#revoke-form input[name=reason]", "refund at ticket office")
    page.click("#revoke-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('revoked')", timeout=5_000)
    page.wait_for_selector('.tile[data-gate="g1"] .lag:text("0/0")', timeout=10_000)  # g1 holds the revocation
    line = gates["g1"].watched.wait_line("reason=", after=gates["g1"].scan(refunded))
    assert "DENY" in line and "revoked" in line, line

    page.select_option("#lang", "en")
    page.wait_for_selector('.tile[data-gate="g2"] .state:text("offline")')
    _shot(page, tmp_path, "console-en")
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    _login(phone, url)
    phone.wait_for_selector('.tile[data-gate="g1"]', timeout=10_000)
    _shot(phone, tmp_path, "console-phone")
