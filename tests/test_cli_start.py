"""What a command loads and what ``ticket issue --json`` / ``ticket batch`` hand the ticket office."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.tickets import SITE

HEAVY = ("cv2", "numpy", "paho", "hub.service", "gate.daemon")


def modules_loaded_by(*argv: str) -> set[str]:
    """The heavy modules a real ``lungta ARGV`` process has imported when it exits."""
    probe = (
        "import atexit, sys, os\n"
        f"atexit.register(lambda: os.write(3, ' '.join(m for m in {HEAVY!r} if m in sys.modules).encode()))\n"
        "from lungta.cli import main\n"
        f"sys.exit(main({list(argv)!r}))\n"
    )
    read_end, write_end = __import__("os").pipe()
    process = subprocess.Popen([sys.executable, "-c", probe.replace("os.write(3", f"os.write({write_end}")], pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    __import__("os").close(write_end)
    with open(read_end, "rb") as pipe:
        loaded = pipe.read().decode().split()
    process.wait(60)
    return set(loaded)


@pytest.mark.parametrize("argv", [("--help",), ("--version",), ("ticket", "--help"), ("gate", "validate", "--help"), ("hub", "gates", "--help"), ("scan", "--help")])
def test_help_loads_no_camera_numpy_or_mqtt(argv):
    assert modules_loaded_by(*argv) == set()


def test_issue_loads_no_camera_numpy_or_mqtt(tmp_path):
    subprocess.run([sys.executable, "-m", "lungta", "keygen", "--kid", "s", "--out", str(tmp_path)], check=True, capture_output=True)
    assert modules_loaded_by("ticket", "issue", "--key", str(tmp_path / "s.key"), "--site", SITE) == set()


def lungta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    assert lungta("keygen", "--kid", "office", "--out", str(tmp_path / "keys")).returncode == 0
    return tmp_path / "keys" / "office.key"


def test_issue_json_gives_the_ticket_id_with_the_text(key):
    record = json.loads(lungta("ticket", "issue", "--json", "--key", str(key), "--site", SITE).stdout)
    inspected = json.loads(lungta("ticket", "inspect", record["text"]).stdout)
    assert inspected["ticket_id"] == record["ticket_id"] and inspected["kid"] == record["kid"]


def test_batch_writes_tickets_a_record_and_printable_sheets(key, tmp_path):
    out = tmp_path / "batch-1"
    result = lungta("ticket", "batch", "--key", str(key), "--site", SITE, "--type", "child", "--count", "120", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "batch.json").read_text())
    assert record == json.loads(result.stdout)
    rows = list(csv.DictReader((out / "tickets.csv").open()))
    assert len(rows) == 120 == record["count"] and len({row["ticket_id"] for row in rows}) == 120
    assert record["tickets_csv_sha256"] == hashlib.sha256((out / "tickets.csv").read_bytes()).hexdigest()
    assert record["sheets"] == ["sheet-0001.html", "sheet-0002.html"]
    sheet = (out / "sheet-0002.html").read_text()
    assert sheet.count("<svg") == 20 and rows[-1]["ticket_id"] in sheet
    inspected = json.loads(lungta("ticket", "inspect", rows[7]["text"], "--trust", str(key.with_suffix(".pub"))).stdout)
    assert inspected["ticket_id"] == rows[7]["ticket_id"] and inspected["claims"]["type"] == "child" and inspected["signature"]["verdict"] == "valid"


def test_batch_never_mixes_with_another_batch(key, tmp_path):
    (tmp_path / "stock").mkdir()
    (tmp_path / "stock" / "tickets.csv").write_text("ticket_id,text\n")
    result = lungta("ticket", "batch", "--key", str(key), "--site", SITE, "--count", "5", "--out", str(tmp_path / "stock"), "--no-sheets")
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "stock" / "tickets.csv").read_text() == "ticket_id,text\n"
