"""The audit log: every action from API and CLI, who and from where, in a hash chain the CLI verifies."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import subprocess
import sys

from hub.console.roles import Role


def _lungta(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_actions_are_audited_as_the_os_user_and_the_chain_verifies(console) -> None:
    config = str(console.config_path)
    ticket = os.urandom(16).hex()
    assert _lungta("hub", "revoke", "--config", config, ticket, "--reason", "refund").returncode == 0
    created = _lungta("hub", "token", "create", "--config", config, "--role", "viewer", "--name", "wallboard")
    assert created.returncode == 0 and created.stdout.strip().splitlines()[-1].startswith("lt_")
    console.client(Role.OPERATOR).post("/api/v1/revocations", {"ticket_ids": [os.urandom(16).hex()], "reason": "api"})
    audit = console.client(Role.ADMIN).get("/api/v1/audit").json()["items"]
    cli_revoke = next(entry for entry in audit if entry["action"] == "revoke" and entry["detail"]["tickets"] == [ticket])
    assert cli_revoke["actor"] == getpass.getuser() and cli_revoke["via"] == "os-user" and cli_revoke["origin"].startswith("cli@")
    assert any(entry["action"] == "addtoken" and entry["detail"]["name"] == "wallboard" for entry in audit)
    verified = _lungta("hub", "audit", "verify", "--config", config)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True


def test_an_edited_audit_entry_is_found_by_verify(console) -> None:
    config = str(console.config_path)
    for reason in ("one", "two", "three"):
        assert _lungta("hub", "revoke", "--config", config, os.urandom(16).hex(), "--reason", reason).returncode == 0
    with sqlite3.connect(console.hub.config.database) as db:
        db.execute("UPDATE console_audit SET actor = 'somebody-else' WHERE seq = 2")
    verified = _lungta("hub", "audit", "verify", "--config", config)
    assert verified.returncode == 1
    report = json.loads(verified.stdout)
    assert report["ok"] is False and report["broken_at"] == 2 and "changed" in report["problem"]


def test_user_add_refuses_a_short_password_and_an_unknown_role_in_one_line(console) -> None:
    config = str(console.config_path)
    short = _lungta("hub", "user", "add", "--config", config, "--role", "viewer", "bo", stdin="short\n")
    assert short.returncode == 2 and short.stderr.count("\n") == 1 and "8" in short.stderr
    bad_role = _lungta("hub", "user", "add", "--config", config, "--role", "god", "bo", stdin="long enough\n")
    assert bad_role.returncode == 2 and "god" in bad_role.stderr
