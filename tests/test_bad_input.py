"""Every bad input an operator can give: exit status 2, one line naming the file and key, no traceback.

Each case runs the real ``lungta`` process on real files (issue 13.5, issue 10.8).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.tickets import SITE


def lungta(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], input=stdin, capture_output=True, text=True, timeout=60)


def refused(result: subprocess.CompletedProcess, *names: str) -> str:
    """The one line a refusal printed, after checking status 2, one line, no traceback, and each name in it."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in result.stderr, (name, result.stderr)
    return result.stderr


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    result = lungta("keygen", "--kid", "sales", "--out", str(tmp_path / "keys"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "keys"


def gate_toml(directory: Path, keys: Path, **overrides: str) -> Path:
    values = {"site": f'"{SITE}"', "id": '"east-1"', "state_dir": '"state"', "trust": f'"{keys / "sales.pub"}"'} | overrides
    text = "[gate]\nmode = \"handheld\"\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
    path = directory / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def hub_toml(directory: Path, database: str = "hub.db", broker: str = "") -> Path:
    result = lungta("keygen", "--kid", "hub", "--out", str(directory / "keys"))
    assert result.returncode == 0, result.stderr
    path = directory / "hub.toml"
    path.write_text(f'[hub]\nsite = "{SITE}"\nkey = "keys/hub.key"\ndatabase = "{database}"\n[broker]\n{broker}', encoding="utf-8")
    return path


# --- gate state directories -------------------------------------------------------------

def test_validate_with_a_state_that_is_a_file(keys, tmp_path):
    (tmp_path / "state").write_text("not a folder")
    refused(lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, "--state", str(tmp_path / "state"), "LT1:X"), "--state", "is a file")


def test_validate_with_a_state_that_cannot_be_created(keys):
    refused(lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, "--state", "/proc/lungta-state", "LT1:X"), "--state", "/proc/lungta-state")


def test_revoke_with_a_state_that_is_a_file(tmp_path):
    (tmp_path / "state").write_text("")
    refused(lungta("gate", "revoke", "--state", str(tmp_path / "state"), "00" * 12), "--state", "is a file")


def test_gate_run_with_a_state_dir_that_is_a_file(keys, tmp_path):
    (tmp_path / "state").write_text("")
    config = gate_toml(tmp_path, keys)
    refused(lungta("gate", "run", "--config", str(config)), str(config), "gate.state_dir", "is a file")


def test_gate_state_of_a_file(tmp_path):
    (tmp_path / "state").write_text("")
    refused(lungta("gate", "state", "--state", str(tmp_path / "state")), "is a file")


# --- hub databases ------------------------------------------------------------------------

def test_hub_database_that_is_a_folder(tmp_path):
    (tmp_path / "hub.db").mkdir()
    config = hub_toml(tmp_path)
    refused(lungta("hub", "gates", "--config", str(config)), str(config), "hub.database", "is a directory")
    refused(lungta("hub", "run", "--config", str(config), "--check"), "hub.database", "is a directory")


def test_hub_database_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "hub.db")
    config = hub_toml(tmp_path)
    refused(lungta("hub", "run", "--config", str(config), "--check"), "hub.database", "not a regular file")


def test_hub_database_that_is_not_sqlite(tmp_path):
    (tmp_path / "hub.db").write_text("these are my notes, not a database\n")
    config = hub_toml(tmp_path)
    refused(lungta("hub", "revoke", "--config", str(config), "00" * 12), "hub.database", "not a SQLite database")


def test_hub_database_in_a_place_that_cannot_be_written(tmp_path):
    config = hub_toml(tmp_path, database="/proc/lungta-hub.db")
    refused(lungta("hub", "revoke", "--config", str(config), "00" * 12), "hub.database", "/proc/lungta-hub.db")


def test_console_commands_on_a_database_that_is_a_folder(tmp_path):
    (tmp_path / "hub.db").mkdir()
    config = hub_toml(tmp_path)
    refused(lungta("hub", "user", "add", "--config", str(config), "--role", "admin", "dolma", stdin="a long password\n"), str(config), "hub.database", "is a directory")
    refused(lungta("hub", "token", "create", "--config", str(config), "--name", "office", "--role", "viewer"), "hub.database", "is a directory")
    refused(lungta("hub", "audit", "verify", "--config", str(config)), "hub.database", "is a directory")


def test_hub_database_locked_by_another_process(tmp_path):
    """Another program holding the write lock past SQLite's busy timeout: one line, exit 2, for a command and for the hub."""
    config = hub_toml(tmp_path)
    assert lungta("hub", "revoke", "--config", str(config), "00" * 12).returncode == 0  # the database exists
    holder = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        refused(lungta("hub", "user", "add", "--config", str(config), "--role", "admin", "dolma", stdin="a long password\n"), "hub.database", "database is locked")
        run = lungta("hub", "run", "--config", str(config))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.splitlines()[-1].endswith("hub.database: " + str(tmp_path / "hub.db") + ": database is locked"), run.stderr


def test_hub_gates_with_a_mistyped_database_creates_nothing(tmp_path):
    config = hub_toml(tmp_path, database="hbu.db")
    refused(lungta("hub", "gates", "--config", str(config)), "hub.database", "does not exist")
    assert not (tmp_path / "hbu.db").exists()


def test_missing_cafile_is_named(tmp_path):
    config = hub_toml(tmp_path, broker='port = 8883\ncafile = "tls/ca.pem"\n')
    refused(lungta("hub", "run", "--config", str(config)), str(config), "broker.cafile", "tls/ca.pem")


def test_hub_command_to_an_unknown_gate_or_an_unknown_command(tmp_path):
    config = hub_toml(tmp_path)
    assert lungta("hub", "revoke", "--config", str(config), "00" * 12).returncode == 0  # the database exists
    refused(lungta("hub", "command", "--config", str(config), "gate-9", "emergency_open", "on=true"), "gate-9", "has ever reported")
    refused(lungta("hub", "command", "--config", str(config), "gate-9", "self_destruct"), "unknown command 'self_destruct'", "emergency_open")
    refused(lungta("hub", "command", "--config", str(config), "gate-9", "emergency_open", "on=maybe"), "on='maybe' must be true or false")
    refused(lungta("hub", "command", "--config", str(config), "gate-9", "emergency_open", "on=1"), "on=1 must be true or false")
    refused(lungta("hub", "command", "--config", str(config), "gate-9", "emergency_open", "reason=drill"), "needs argument on")
    with sqlite3.connect(tmp_path / "hub.db") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox WHERE stream LIKE 'command/%'").fetchone()[0] == 0


def test_quota_for_a_past_date_is_refused(tmp_path):
    config = hub_toml(tmp_path)
    refused(lungta("hub", "quota", "set", "--config", str(config), "--site", SITE, "--date", "2020-05-01", "--slot", "09:00-10:00", "--cap", "10"), "2020-05-01", "in the past")


# --- tickets and keys -----------------------------------------------------------------------

def test_png_into_a_missing_folder_or_onto_a_folder(keys, tmp_path):
    base = ["ticket", "issue", "--key", str(keys / "sales.key"), "--site", SITE, "--png"]
    refused(lungta(*base, str(tmp_path / "nowhere" / "t.png")), "--png", "does not exist")
    refused(lungta(*base, str(tmp_path)), "--png", "is a directory")


@pytest.mark.parametrize(
    "extra, complaint",
    [
        (["--zone", ""], "--zone: '' must be 1..64 characters"),
        (["--holder-name", "x" * 65], "--holder-name"),
        (["--site", "s" * 65], "--site"),
        (["--entries-per-day", "0"], "--entries-per-day"),
    ],
)
def test_issue_refuses_what_a_gate_would_refuse(keys, extra, complaint):
    refused(lungta("ticket", "issue", "--key", str(keys / "sales.key"), "--site", SITE, *extra), complaint)


def test_keygen_out_a_file_or_a_place_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("")
    refused(lungta("keygen", "--kid", "k", "--out", str(tmp_path / "file")), "is a file")
    refused(lungta("keygen", "--kid", "k", "--out", "/proc/lungta-keys"), "/proc/lungta-keys")


def test_keygen_never_follows_a_symlink_at_the_public_key(tmp_path):
    (tmp_path / "keys").mkdir()
    target = tmp_path / "elsewhere"
    os.symlink(target, tmp_path / "keys" / "k.pub")
    refused(lungta("keygen", "--kid", "k", "--out", str(tmp_path / "keys")), "k.pub", "already exists")
    assert not target.exists() and not (tmp_path / "keys" / "k.key").exists()


def test_times_without_an_offset_are_site_local(keys):
    result = lungta("ticket", "issue", "--json", "--key", str(keys / "sales.key"), "--site", SITE, "--valid-from", "2026-12-01T08:00", "--valid-until", "2026-12-01T18:00")
    ticket = json.loads(result.stdout)
    claims = json.loads(lungta("ticket", "inspect", ticket["text"]).stdout)["claims"]
    assert (claims["valid_from"], claims["valid_until"]) == ("2026-12-01T00:00:00Z", "2026-12-01T10:00:00Z")
    assert "site's time zone" in lungta("ticket", "issue", "--help").stdout


# --- hostile config files -------------------------------------------------------------------

def test_deeply_nested_gate_toml(tmp_path):
    config = tmp_path / "gate.toml"
    config.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    refused(lungta("gate", "run", "--config", str(config), "--check"), str(config), "nested too deeply")


def test_non_utf8_trust_toml(keys, tmp_path):
    (tmp_path / "trust.toml").write_bytes(b"[[key]]\nname = \"\xff\xfe\"\n")
    config = gate_toml(tmp_path, keys, trust='"trust.toml"')
    refused(lungta("gate", "run", "--config", str(config), "--check"), "gate.trust", "not UTF-8")


def test_trust_dev_zero_is_refused_at_once(keys, tmp_path):
    config = gate_toml(tmp_path, keys, trust='"/dev/zero"')
    refused(lungta("gate", "run", "--config", str(config), "--check"), "gate.trust", "/dev/zero", "not a regular file")


@pytest.mark.parametrize("secret", ["/dev/zero", "fifo"])
def test_a_site_secret_that_is_not_a_regular_file_is_refused_at_once(keys, tmp_path, secret):
    if secret == "fifo":
        os.mkfifo(tmp_path / "fifo")
    config = gate_toml(tmp_path, keys)
    config.write_text(config.read_text(encoding="utf-8") + f'[realname]\ncheck = "required"\nsecret_file = "{secret}"\n', encoding="utf-8")
    refused(lungta("gate", "run", "--config", str(config), "--check"), "realname.secret_file", secret, "not a regular file")


def test_trust_that_is_a_folder_is_one_line(keys, tmp_path):
    config = gate_toml(tmp_path, keys, trust=f'"{tmp_path}"')
    refused(lungta("gate", "run", "--config", str(config), "--check"), "gate.trust", "is a directory")


def test_trust_fifo_is_refused_without_blocking(keys, tmp_path):
    os.mkfifo(tmp_path / "trust.toml")
    config = gate_toml(tmp_path, keys, trust='"trust.toml"')
    refused(lungta("gate", "run", "--config", str(config), "--check"), "gate.trust", "not a regular file")


@pytest.mark.parametrize("gate_id", ["east/1", "east#1", "+"])
def test_a_gate_id_that_is_not_a_topic_level(keys, tmp_path, gate_id):
    config = gate_toml(tmp_path, keys, id=json.dumps(gate_id))
    refused(lungta("gate", "run", "--config", str(config), "--check"), str(config), "gate.id")
