"""Secrets at rest and on the wire: passwords under scrypt, tokens stored only as hashes, HTTPS with tls_cert / tls_key."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from hub.console.passwords import check_password, hash_password
from hub.console.roles import Role
from hub.console.server import start_for_service
from lungta.pki import make_ca, make_server_certificate, write_issued
from tests.hub.conftest import start_hub
from tests.hub.console.conftest import TIMEOUT, console_config


def test_a_password_is_stored_under_a_memory_hard_salted_kdf() -> None:
    stored = hash_password("correct horse battery")
    scheme, n, r, p, salt, _ = stored.split("$")
    assert scheme == "scrypt" and 128 * int(n) * int(r) >= 16 * 2**20, "at least 16 MiB a check"
    assert hash_password("correct horse battery") != stored, "salted: the same password hashes differently"
    assert check_password("correct horse battery", stored) and not check_password("correct horse batterY", stored)


def test_the_database_holds_no_password_or_token_in_clear(console) -> None:
    added = subprocess.run([sys.executable, "-m", "lungta", "hub", "user", "add", "--config", str(console.config_path), "--role", "admin", "dolma"],
                           input="a long pass phrase\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    token = console.token(Role.VIEWER, "wallboard")
    assert console.client().get("/api/v1/me").status == 401
    assert json.loads(type(console.client())(console.url, token).get("/api/v1/me").body)["name"] == "wallboard"
    dump = "\n".join(sqlite3.connect(console.hub.config.database).iterdump())
    assert "a long pass phrase" not in dump and token not in dump and token[3:] not in dump


@pytest.fixture
def tls_console(tmp_path, broker, hub_key):
    ca = make_ca("potala")
    (tmp_path / "hub" / "tls").mkdir(parents=True)
    write_issued(make_server_certificate(ca, ["127.0.0.1"]), tmp_path / "hub" / "tls" / "console.pem", tmp_path / "hub" / "tls" / "console.key")
    path = console_config(tmp_path / "hub", broker, hub_key)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('tls_cert = "tls/console.pem"\ntls_key = "tls/console.key"\n')  # relative to hub.toml
    hub = start_hub(path)
    server = start_for_service(hub.config, hub.service)
    assert server is not None and server.console.feed.ready.wait(TIMEOUT)
    context = ssl.create_default_context(cadata=ca.certificate.decode())
    yield server, context
    server.stop()
    hub.stop()


def test_the_console_speaks_https_with_the_configured_certificate(tls_console) -> None:
    server, context = tls_console
    assert server.url.startswith("https://127.0.0.1:")
    with urllib.request.urlopen(server.url + "api/v1/openapi.json", context=context, timeout=TIMEOUT) as answer:
        assert answer.status == 200 and json.loads(answer.read())["openapi"].startswith("3.")
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(server.url.replace("https://", "http://") + "healthz", timeout=TIMEOUT)


def test_a_client_that_never_completes_the_tls_handshake_holds_up_nobody(tls_console) -> None:
    """A phone that dropped mid-handshake, a port scanner: the handshake runs in the connection's own thread."""
    server, context = tls_console
    host, port = server.httpd.server_address[:2]
    with socket.create_connection((host, port)):  # connected, says nothing
        with urllib.request.urlopen(server.url + "healthz", context=context, timeout=TIMEOUT) as answer:
            assert answer.status == 200


def test_a_login_over_https_sets_a_secure_cookie(tls_console) -> None:
    server, context = tls_console
    from hub.console.actions import AddAccount
    from lungta.console_cli import cli_perform

    cli_perform(server.console.config, AddAccount("dolma", Role.OPERATOR, "control room 24h"))
    request = urllib.request.Request(server.url + "api/v1/login", json.dumps({"name": "dolma", "password": "control room 24h"}).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=TIMEOUT) as answer:
        cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_revoked_token_and_a_removed_account_stop_working_at_once(console) -> None:
    from tests.hub.console.conftest import Client

    admin = console.client(Role.ADMIN)
    leaked = console.token(Role.OPERATOR, "ticket-office")
    assert Client(console.url, leaked).get("/api/v1/me").status == 200
    assert console.client(Role.OPERATOR).request("DELETE", "/api/v1/tokens/ticket-office").status == 403, "an operator manages no tokens"
    answer = admin.request("DELETE", "/api/v1/tokens/ticket-office")
    assert answer.status == 200 and answer.json()["revoked_tokens"] == 1
    assert Client(console.url, leaked).get("/api/v1/me").status == 401
    assert admin.request("DELETE", "/api/v1/tokens/ticket-office").status == 404

    assert admin.post("/api/v1/accounts", {"name": "tenzin", "role": "viewer", "password": "left in march"}).status == 201
    session = Client(console.url).post("/api/v1/login", {"name": "tenzin", "password": "left in march"}).json()["token"]
    assert Client(console.url, session).get("/api/v1/gates").status == 200
    removed = subprocess.run([sys.executable, "-m", "lungta", "hub", "user", "remove", "--config", str(console.config_path), "tenzin"],
                             capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0, removed.stderr
    assert Client(console.url, session).get("/api/v1/gates").status == 401, "the open session ends with the account"
    assert Client(console.url).post("/api/v1/login", {"name": "tenzin", "password": "left in march"}).status == 401
    actions = [entry["action"] for entry in admin.get("/api/v1/audit").json()["items"]]
    assert actions[:2] == ["removeaccount", "login"] and "revoketoken" in actions


def test_hub_run_with_an_unreadable_certificate_stops_with_one_line_naming_the_keys(tmp_path, broker, hub_key) -> None:
    path = console_config(tmp_path / "hub", broker, hub_key)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('tls_cert = "tls/missing.pem"\ntls_key = "tls/missing.key"\n')
    result = subprocess.run([sys.executable, "-m", "lungta", "hub", "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert result.returncode == 2 and len(errors) == 1 and "tls_cert / tls_key" in errors[0] and "missing.pem" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
