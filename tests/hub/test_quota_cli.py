"""``lungta hub quota set|list|show``: output, warnings, and one clear line for every bad input."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from hub.quota import LeaseGrant, Quota, QuotaUse
from hub.sqlite_store import SqliteHubStore
from lungta import hub_cli
from lungta.errors import CommandError

DAY = "2099-11-18"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """The quota commands only need the database: no key, no broker."""
    path = tmp_path / "hub" / "hub.toml"
    path.parent.mkdir()
    path.write_text('[hub]\nsite = "potala"\nkey = "keys/hub.key"\ndatabase = "hub.db"\n', encoding="utf-8")
    return path


def run(*argv: str) -> tuple[str, str]:
    """(stdout, stderr) of ``lungta hub ARGV``; a CommandError propagates, as to lungta.cli.main."""
    parser = argparse.ArgumentParser()
    hub_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["hub", *argv])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        args.run(args)
    return out.getvalue(), err.getvalue()


def quota_set(config_path: Path, slot: str = "09:00-10:00", cap: str = "500", site: str = "potala", day: str = DAY) -> tuple[str, str]:
    return run("quota", "set", "--config", str(config_path), "--site", site, "--date", day, "--slot", slot, "--cap", cap)


def test_set_then_list_shows_the_slot(config_path):
    out, err = quota_set(config_path)
    assert json.loads(out) == {"site": "potala", "date": DAY, "slot": "09:00-10:00", "cap": 500, "admitted": 0, "allocated": 0, "gates": 0}
    assert err == ""
    quota_set(config_path, "10:00-11:00", "300")
    table = run("quota", "list", "--config", str(config_path))[0].splitlines()
    assert table[0].split() == ["DATE", "SLOT", "CAP", "ADMITTED", "ALLOCATED", "GATES"]
    assert [line.split()[:3] for line in table[1:]] == [[DAY, "09:00-10:00", "500"], [DAY, "10:00-11:00", "300"]]
    assert run("quota", "list", "--config", str(config_path), "--date", "2099-11-19")[0] == "no quota is set for 2099-11-19\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"site": "everest"}, "--site 'everest' is not the site of"),
        ({"day": "2026-02-30"}, "date '2026-02-30' is not a day as YYYY-MM-DD"),
        ({"slot": "10:00-09:00"}, "slot '10:00-09:00' must end after it starts"),
        ({"slot": "9-10"}, "slot '9-10' is not HH:MM-HH:MM"),
        ({"cap": "-1"}, "cap -1 must be a number of persons"),
        ({"cap": "many"}, "cap 'many' is not a whole number of persons"),
        ({"slot": "09:30-10:30"}, "slot 09:30-10:30 overlaps slot 09:00-10:00 of 2099-11-18"),
    ],
)
def test_bad_input_is_one_line_naming_it(config_path, options, message):
    quota_set(config_path)
    with pytest.raises(CommandError) as caught:
        quota_set(config_path, **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_cap_below_what_is_out_is_set_with_a_warning(config_path):
    quota_set(config_path, cap="100")
    store = SqliteHubStore(config_path.parent / "hub.db")
    try:
        store.add_leases(Quota(DAY, 540, 600, 100), [LeaseGrant("g1", 40, 2**40)], 0)
        store.add_quota_uses([QuotaUse("g1", DAY, 540, 0, 25)])
    finally:
        store.close()
    out, err = quota_set(config_path, cap="30")
    assert json.loads(out)["cap"] == 30 and (json.loads(out)["admitted"], json.loads(out)["allocated"]) == (25, 40)
    assert err.startswith("lungta: warning: cap 30 is below") and err.count("\n") == 1


def test_show_lists_every_known_gate_and_refuses_an_unknown_slot(config_path):
    quota_set(config_path, cap="100")
    store = SqliteHubStore(config_path.parent / "hub.db")
    try:
        store.add_leases(Quota(DAY, 540, 600, 100), [LeaseGrant("g1", 40, 2**42), LeaseGrant("g2", 0, 2**42)], 0)
    finally:
        store.close()
    rows = [json.loads(line) for line in run("quota", "show", "--config", str(config_path), "--date", DAY, "--slot", "09:00-10:00", "--json")[0].splitlines()]
    assert [(row["gate"], row["granted"], row["held"], row["used"], row["online"]) for row in rows] == [("g1", 40, 40, 0, False), ("g2", 0, 0, 0, False)]
    table = run("quota", "show", "--config", str(config_path), "--date", DAY, "--slot", "09:00-10:00")[0].splitlines()
    assert table[0].split() == ["GATE", "GRANTED", "HELD", "USED", "EXPIRES", "LEASE_ID", "CONFIRMED", "ONLINE"]
    with pytest.raises(CommandError, match="no quota is set for 2099-11-18 10:00-11:00"):
        run("quota", "show", "--config", str(config_path), "--date", DAY, "--slot", "10:00-11:00")
