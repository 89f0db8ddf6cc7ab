"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a live ``lungta hub run``,
real ``lungta gate run`` daemons and a real broker.

Screenshots are kept as test artifacts in build/test-artifacts/console/ (paths
printed); set LUNGTA_SCREENSHOTS=DIR to write them there instead (docs/img/ for the README).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit.broker import free_port
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket, read_ticket
from testkit.tickets import make_claims
from testkit.hub_config import write_hub_config
from testkit.live_gate import GateProcess, WatchedProcess, hub_section, lungta, write_gate_config
from testkit.ptys import RawPty
from tests.hub.console.conftest import screenshot

PASSWORD = "control room 24h"


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = screenshot(page, name)
    assert path.stat().st_size > 10_000, f"{path} holds a drawn page"
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
    hub = WatchedProcess(lungta("hub", "run", "--config", str(config)), "hub")
    cables = {name: RawPty() for name in ("g1", "g2")}
    gates = {}
    try:
        hub.wait_line("console listening on")
        for name, cable in cables.items():
            gate_config = write_gate_config(tmp_path / name, issuer_pub, cable.port, gate_id=name, site=broker.site, sections=hub_section(broker, name, hub_pub))
            gates[name] = GateProcess(gate_config, "--log-level", "INFO")
        for name, gate in gates.items():
            gate.wait_ready(cables[name].port)
        yield f"http://127.0.0.1:{port}/", gates, cables
    finally:
        for gate in gates.values():
            gate.stop()
        for cable in cables.values():
            cable.close()
        hub.stop()


def _scan(gate: GateProcess, cable: RawPty, text: str) -> int:
    """Type a ticket into the gate's scanner; the log position to wait for its decision from."""
    mark = gate.mark()
    cable.scan(text)
    return mark


def _login(page, url: str) -> None:
    page.goto(url)
    page.fill("#login-form input[name=name]", "dolma")
    page.fill("#login-form input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")


def test_a_killed_gate_goes_offline_with_an_alert_and_a_ui_revocation_makes_a_gate_refuse(site, browser, tmp_path, issuer_key) -> None:
    url, gates, cables = site
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    _login(page, url)
    for name in gates:
        page.wait_for_selector(f'.tile[data-gate="{name}"][data-status="online"]', timeout=20_000)
    now = int(time.time())
    admitted = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    gates["g1"].wait_line("GRANT", after=_scan(gates["g1"], cables["g1"], admitted))
    page.wait_for_function("() => Number(document.querySelector('.total[data-key=persons_today] b').textContent) >= 1", timeout=5_000)
    _shot(page, tmp_path, "console-wall")

    killed_at = time.monotonic()
    gates["g2"].kill()
    page.wait_for_selector('.tile[data-gate="g2"][data-status="offline"]', timeout=5_000)
    page.wait_for_selector('.alerts li[data-kind="gate_offline"][data-gate="g2"]', timeout=max(100, int((5 - (time.monotonic() - killed_at)) * 1000)))
    assert time.monotonic() - killed_at < 5, "offline tile and alert within 5 s of the kill"
    _shot(page, tmp_path, "console-gate-down")

    refunded = issue_ticket(make_claims(not_before=now - 60, expires=now + 3600), issuer_key)
    page.click("#revoke-box summary")
    page.fill("#revoke-form textarea[name=ticket_ids]", read_ticket(refunded).claims.ticket_id.hex())
    page.fill("#revoke-form input[name=reason]", "refund at ticket office")
    before_revoke = gates["g1"].mark()
    page.click("#revoke-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('action-result').textContent.includes('revoked')", timeout=5_000)
    gates["g1"].wait_line("applied revocations seq", after=before_revoke)  # g1 holds the revocation
    page.wait_for_selector('.tile[data-gate="g1"] .lag:text("0/0")', timeout=10_000)
    line = gates["g1"].wait_line("reason=", after=_scan(gates["g1"], cables["g1"], refunded))
    assert "DENY" in line and "revoked" in line, line

    page.select_option("#lang", "en")
    page.wait_for_selector('.tile[data-gate="g2"] .state:text("offline")')
    _shot(page, tmp_path, "console-en")
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    _login(phone, url)
    phone.wait_for_selector('.tile[data-gate="g1"]', timeout=10_000)
    _shot(phone, tmp_path, "console-phone")


def test_a_wall_of_24_gates_fits_the_control_room_screen_and_a_phone(tmp_path, make_broker, hub_key, gate_factory_for, browser) -> None:
    """Every tile visible at 1366x768 without scrolling sideways; one column on a phone; faults shown on their tiles."""
    from hub.console.roles import Role
    from hub.console.server import start_for_service
    from tests.hub.conftest import start_hub
    from tests.hub.console.conftest import console_config

    names = [f"{side}-{number}" for side in ("east", "west", "north") for number in range(1, 9)]
    broker = make_broker(names)
    path = console_config(tmp_path / "hub", broker, hub_key)
    hub = start_hub(path)
    server = start_for_service(hub.config, hub.service)
    try:
        gates = gate_factory_for(broker)
        day = time.strftime("%Y-%m-%d")
        for index, name in enumerate(names):
            gate = gates(name)
            relay = "emergency: fire drill" if name == "north-8" else "ok"
            scanner = "camera: no frames for 30 s" if name == "west-3" else "ok"
            gate.heartbeat(backlog=index % 3, rev_seq=0, used_seq=0, clock_offset_ms=40, scanner=scanner, relay=relay, disk_free_mb=20_000, temperature_c=45.0)
            admissions = gate.make_events(5 + index % 7, "admission", data={"decision": "grant", "reason": "valid", "persons": 1, "usage": {"zone": "main", "day": day, "entries": 1, "exits": 0}})
            gate.publish_events(admissions + gate.make_events(index % 3, "deny", data={"decision": "deny", "reason": "already_used", "persons": 0}))
        gates("east-5").disconnect(with_will=True)
        feed = server.console.feed
        from tests.hub.console.conftest import Client
        admin = Client(server.url, _token(hub.config, Role.OPERATOR))
        assert admin.post("/api/v1/quotas", {"date": day, "slot": "00:00-12:00", "cap": 400}).status == 200
        assert admin.post("/api/v1/quotas", {"date": day, "slot": "12:00-24:00", "cap": 600}).status == 200
        deadline = time.monotonic() + 20
        while not any(g["gate"] == "east-5" and g["status"] == "offline" for g in feed.snapshot.data.get("gates", [])):
            assert feed.wait_newer(feed.snapshot.version, deadline - time.monotonic()), "east-5 never went offline"
        _add_account(hub.config)
        wall = browser.new_page(viewport={"width": 1366, "height": 768})
        _login(wall, server.url)
        wall.wait_for_selector('.tile[data-gate="east-5"][data-status="offline"]', timeout=10_000)
        wall.wait_for_selector('.tile[data-gate="north-8"][data-emergency="true"]', timeout=10_000)
        assert "camera" in wall.inner_text('.tile[data-gate="west-3"] .faults')
        hover = wall.get_attribute('.tile[data-gate="west-3"]', "title")
        assert "20000 MB" in hover and "45 °C" in hover and "+40 ms" in hover, f"disk, temperature and clock on hover: {hover!r}"
        assert wall.evaluate("() => document.documentElement.scrollWidth") <= 1366
        bottoms = wall.evaluate("() => [...document.querySelectorAll('.tile')].map((t) => t.getBoundingClientRect().bottom)")
        assert len(bottoms) == 24 and max(bottoms) <= 768, f"every tile on the control-room screen: {max(bottoms)}"
        _shot(wall, tmp_path, "console")
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
        _login(phone, server.url)
        phone.wait_for_selector('.tile[data-gate="east-1"]', timeout=10_000)
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390, "nothing sticks out sideways on a phone"
        _shot(phone, tmp_path, "console-phone-wall")
    finally:
        server.stop()
        hub.stop()


def _token(config, role) -> str:
    from hub.console.actions import AddToken
    from lungta.console_cli import cli_perform
    return cli_perform(config, AddToken(f"wall-{role.value}", role)).body["token"]


def _add_account(config) -> None:
    from hub.console.actions import AddAccount
    from hub.console.roles import Role
    from lungta.console_cli import cli_perform
    cli_perform(config, AddAccount("dolma", Role.OPERATOR, PASSWORD))


@pytest.fixture
def gate_factory_for(hub_trust):
    """gate_factory_for(broker)(name): SimGates on a broker of the test's own making; disconnected at teardown."""
    from testkit.sim_gate import SimGate
    made = []

    def for_broker(broker):
        def make(name):
            existing = next((gate for gate in made if gate.gate == name), None)
            if existing is not None:
                return existing
            gate = SimGate(broker.host, broker.port, broker.site, name, broker.password(name), hub_trust).connect()
            made.append(gate)
            return gate
        return make

    yield for_broker
    for gate in made:
        gate.client.disconnect()
        gate.client.loop_stop()
