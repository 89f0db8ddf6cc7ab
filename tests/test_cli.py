"""The ``lungta`` command as an operator runs it: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.tickets import SITE


def lungta(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    result = lungta("keygen", "--kid", "sales", "--out", str(tmp_path / "keys"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "keys"


def issue(keys: Path, *extra: str) -> str:
    result = lungta("ticket", "issue", "--key", str(keys / "sales.key"), "--site", SITE, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def validate(keys: Path, *texts: str, at: str | None = None, stdin: str | None = None) -> list[dict]:
    args = ["gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, *(["--at", at] if at else []), *texts]
    result = lungta(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_keygen_writes_owner_only_key_and_reports_the_kid(keys):
    assert oct((keys / "sales.key").stat().st_mode & 0o777) == "0o600"
    assert (keys / "sales.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_issue_then_inspect_shows_ticket_id_kid_claims_and_verdict(keys, tmp_path):
    assert lungta("ticket", "secret", "--out", str(tmp_path / "holder.secret")).returncode == 0
    text = issue(keys, "--type", "child", "--persons", "2", "--slot", "09:00-10:00", "--holder", "540102199001011233", "--holder-secret", str(tmp_path / "holder.secret"), "--holder-name", "扎西次仁", "--png", str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = lungta("ticket", "inspect", text, "--trust", str(keys / "sales.pub"))
    record = json.loads(result.stdout)
    assert result.returncode == 0
    assert len(record["ticket_id"]) == 24 and record["ticket_id"] == record["claims"]["ticket_id"]
    assert len(record["kid"]) == 16
    assert record["claims"]["type"] == "child" and record["claims"]["persons"] == 2 and record["claims"]["slot"] == "09:00-10:00"
    assert record["claims"]["holder_name"] == "扎**仁"
    assert record["signature"]["verdict"] == "valid"


def test_validate_grants_good_and_refuses_forged_expired_and_wrong_site(keys, tmp_path):
    good = issue(keys, "--valid-from", "2026-11-23T08:00:00+08:00", "--valid-until", "2026-11-23T18:00:00+08:00")
    short_lived = issue(keys, "--valid-from", "2026-11-23T08:00:00+08:00", "--valid-until", "2026-11-23T18:00:00+08:00")
    lungta("keygen", "--kid", "rogue", "--out", str(tmp_path / "rogue"))
    forged = lungta("ticket", "issue", "--key", str(tmp_path / "rogue" / "rogue.key"), "--site", SITE).stdout.strip()
    wrong_site = lungta("ticket", "issue", "--key", str(keys / "sales.key"), "--site", "jiuzhaigou", "--valid-from", "2026-11-23T08:00:00+08:00").stdout.strip()
    records = validate(keys, good, forged, "garbage", wrong_site, at="2026-11-23T10:00:00+08:00")
    assert [(r["decision"], r["reason"]) for r in records] == [("grant", "valid"), ("deny", "unknown_key"), ("deny", "malformed"), ("deny", "wrong_site")]
    assert records[0]["ticket"]["site"] == SITE
    expired = validate(keys, short_lived, at="2026-11-24T10:00:00+08:00")
    assert (expired[0]["decision"], expired[0]["reason"]) == ("deny", "expired")


def test_validate_reads_one_text_per_line_from_stdin(keys):
    texts = [issue(keys), issue(keys)]
    records = validate(keys, stdin="\n".join(texts) + "\n\n")
    assert [r["decision"] for r in records] == ["grant", "grant"]


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["ticket", "issue", "--key", "/nonexistent.key", "--site", "x"], "/nonexistent.key: cannot read"),
        (["gate", "validate", "--trust", "/nonexistent.toml", "--site", "x", "t"], "/nonexistent.toml: cannot read trust store"),
        (["gate", "validate", "--trust", "/dev/null", "--site", "x", "--at", "yesterday", "t"], "--at: 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_errors_are_one_line_on_stderr_with_non_zero_status(args, complaint):
    result = lungta(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and complaint in result.stderr


def test_bad_slot_and_type_are_explained(keys):
    result = lungta("ticket", "issue", "--key", str(keys / "sales.key"), "--site", SITE, "--slot", "9-10")
    assert result.returncode != 0 and "HH:MM-HH:MM" in result.stderr
    result = lungta("ticket", "issue", "--key", str(keys / "sales.key"), "--site", SITE, "--type", "vip")
    assert result.returncode != 0 and "adult, child" in result.stderr


def test_help_is_available_for_every_command():
    for args in (["--help"], ["ticket", "issue", "--help"], ["ticket", "inspect", "--help"], ["gate", "validate", "--help"], ["keygen", "--help"]):
        result = lungta(*args)
        assert result.returncode == 0 and "usage: lungta" in result.stdout


def test_validate_with_state_remembers_the_ticket_between_runs(keys, tmp_path):
    text = issue(keys)
    state = tmp_path / "gate-state"
    first = lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, "--state", str(state), text)
    second = lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, "--state", str(state), "--gate-id", "west-2", text)
    assert json.loads(first.stdout)["decision"] == "grant"
    refused = json.loads(second.stdout)
    assert (refused["decision"], refused["reason"]) == ("deny", "already_used")
    assert "handheld" in refused["detail"]


def test_revoke_then_validate_refuses_and_state_shows_the_counts(keys, tmp_path):
    text = issue(keys)
    ticket_id = json.loads(lungta("ticket", "inspect", text).stdout)["ticket_id"]
    state = tmp_path / "gate-state"
    lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, "--state", str(state), issue(keys))
    revoked = lungta("gate", "revoke", "--state", str(state), ticket_id)
    assert revoked.returncode == 0, revoked.stderr
    record = json.loads(lungta("gate", "validate", "--trust", str(keys / "sales.pub"), "--site", SITE, "--state", str(state), text).stdout)
    assert record["reason"] == "revoked"
    shown = json.loads(lungta("gate", "state", "--state", str(state)).stdout)
    assert shown["revocations"]["entries"] == 1
    assert shown["events"]["outbox_backlog"] == 3  # admission, local revocation, refusal
    assert shown["events"]["next_event_seq"] == 4
    assert shown["clock"]["high_water"] > 0


def test_revoke_refuses_an_id_that_is_not_a_ticket_id(tmp_path):
    result = lungta("gate", "revoke", "--state", str(tmp_path / "s"), "not-hex")
    assert result.returncode != 0 and "is not hex" in result.stderr
    result = lungta("gate", "revoke", "--state", str(tmp_path / "s"), "abcd")
    assert result.returncode != 0 and "12..32 bytes" in result.stderr


def test_state_of_a_directory_without_state_says_so(tmp_path):
    result = lungta("gate", "state", "--state", str(tmp_path))
    assert result.returncode != 0 and "no gate state here" in result.stderr
