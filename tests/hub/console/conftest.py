"""Fixtures for the console: a real hub (broker, SQLite, worker thread) with its console on a free port,
and a client that speaks HTTP to it. Accounts and tokens are made the way an operator makes them."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.console.actions import AddToken
from hub.console.roles import Role
from hub.console.server import ConsoleServer, start_for_service
from lungta.console_cli import cli_perform
from tests.hub.conftest import RunningHub, start_hub
from testkit.hub_config import write_hub_config

TIMEOUT = 10.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Client:
    """urllib against the console: no third-party HTTP client between the test and the server."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base, self.token = base.rstrip("/"), token

    def request(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def get(self, path: str, **kwargs: object) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: object = None, **kwargs: object) -> Answer:
        return self.request("POST", path, body if body is not None else {}, **kwargs)


@dataclass
class RunningConsole:
    hub: RunningHub
    server: ConsoleServer
    config_path: Path

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, role: Role, name: str | None = None) -> str:
        return cli_perform(self.hub.config, AddToken(name or f"test-{role.value}", role)).body["token"]

    def client(self, role: Role | None = None) -> Client:
        return Client(self.url, self.token(role) if role else None)

    def wait_snapshot(self, predicate: Callable[[dict], bool], timeout: float = TIMEOUT) -> dict:
        """Until the live feed's snapshot satisfies ``predicate``; fails with the last one seen."""
        feed = self.server.console.feed
        snap = feed.snapshot
        seen = [snap]
        end = time.monotonic() + timeout
        while not predicate(snap.data):
            left = end - time.monotonic()
            assert left > 0, f"snapshot never matched; last: {json.dumps(seen[-1].data)[:2000]}"
            snap = feed.wait_newer(snap.version, left) or snap
            seen.append(snap)
        return snap.data


def console_config(directory: Path, broker, key, **options: object) -> Path:
    path = write_hub_config(directory, broker, key, heartbeat_interval_s=1, **options)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('\n[http]\nlisten = "127.0.0.1:0"\noffline_alert_s = 2\n')
    return path


@pytest.fixture
def console(tmp_path: Path, broker, hub_key) -> Iterator[RunningConsole]:
    path = console_config(tmp_path / "hub", broker, hub_key)
    hub = start_hub(path)
    server = start_for_service(hub.config, hub.service)
    assert server is not None and server.console.feed.ready.wait(TIMEOUT)
    yield RunningConsole(hub, server, path)
    server.stop()
    hub.stop()


ARTIFACTS = Path(__file__).resolve().parents[3] / "build" / "test-artifacts" / "console"


def screenshot(page, name: str) -> Path:
    """Keep a screenshot as a test artifact: build/test-artifacts/console/NAME.png (git-ignored, outlives the test's tmp dir),
    or under $LUNGTA_SCREENSHOTS (docs/img/ to refresh the README's)."""
    directory = Path(os.environ.get("LUNGTA_SCREENSHOTS") or ARTIFACTS)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")
    return path


@pytest.fixture
def browser():
    """Debian's chromium driven by Playwright (no ``playwright install``: the system browser)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the console tests drive the system chromium)")
    if not CHROMIUM.exists():
        pytest.skip("apt-get install chromium (make sysdeps)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def browser_page(browser):
    """A control-room sized page."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    yield page
    page.close()
