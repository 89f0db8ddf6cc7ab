"""Faults on a live ``lungta gate run``: hostile codes, a full disk, SIGKILL mid-admission.

Each test runs the real daemon (serial scanner on a pty, sim turnstile) and
checks what staff would notice: the decision logged, the relay log of the
turnstile, the process still running, the next visitor admitted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gate.cache.records import UsageCount
from gate.cache.state import GateStore
from protocol.keys import write_key_pair
from protocol.ticket import read_ticket
from testkit.waiting import wait_until
from testkit.live_gate import GateProcess, relay_openings, write_gate_config
from testkit.ptys import RawPty
from testkit.tickets import live_ticket

HOSTILE = ["LT1:SERR8EAB8AB8AB8AB8AB8AB8AB8K1"] + ["LT1:QERORQJ1"] * 5  # CBOR tags 37 and 35: crashed the daemon (issue 10)


@pytest.fixture
def scanner():
    port = RawPty()
    yield port
    port.close()


@pytest.fixture
def trust_file(tmp_path, issuer_key) -> Path:
    return write_key_pair(issuer_key, tmp_path / "keys", "sales")[1]


def test_hostile_codes_and_a_poisoned_used_mark_never_move_a_relay_and_the_gate_goes_on(tmp_path, issuer_key, trust_file, scanner):
    state = tmp_path / "state"
    poisoned = live_ticket(issuer_key)
    with GateStore.open(state) as store:  # a used mark at 2^53 ms, as a compromised gate relayed it (issue 10): once a crash at every gate
        store.apply_usage_mark(UsageCount(read_ticket(poisoned).claims.ticket_id, "main", "2026-11-18", "west-9", 1, 0, 2**53))
    gate = GateProcess(write_gate_config(tmp_path, trust_file, scanner.port, state))
    gate.wait_ready(scanner.port)
    for count, text in enumerate(HOSTILE, 1):
        scanner.scan(text)
        gate.wait_line("visitor DENY", count=count)  # identical codes back to back would be one read
    assert gate.alive() and relay_openings(tmp_path) == 0
    scanner.scan(poisoned)
    gate.wait_line("visitor DENY reason=already_used")  # decided, not crashed (an unexpected exception: tests/gate/test_recovery.py)
    assert gate.alive() and relay_openings(tmp_path) == 0
    scanner.scan(live_ticket(issuer_key))
    assert "reason=valid" in gate.wait_line("visitor GRANT")
    assert gate.stop() == 0
    assert poisoned.removeprefix("LT1:")[:40] not in gate.log  # logged by hash, never the raw text
    assert relay_openings(tmp_path) >= 1


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, mounted by the test (root only), so the disk can really fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(directory: Path) -> Path:
    """Write until the filesystem is full; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            pass
    return filler


def test_a_full_disk_refuses_with_storage_error_raises_the_alarm_and_the_gate_recovers(tmp_path, issuer_key, trust_file, scanner, small_disk):
    gate = GateProcess(write_gate_config(tmp_path, trust_file, scanner.port, small_disk / "state"))
    gate.wait_ready(scanner.port)
    filler = _fill(small_disk)
    tickets = [live_ticket(issuer_key) for _ in range(3)]
    for text in tickets:
        scanner.scan(text)
    gate.wait_line("visitor DENY reason=storage_error", count=3)
    gate.wait_line("alarm raised storage")
    assert gate.alive() and relay_openings(tmp_path) == 0
    filler.unlink()
    scanner.scan(tickets[0])  # refused while the disk was full: nothing was recorded, so it is still valid
    assert "reason=valid" in gate.wait_line("visitor GRANT")
    gate.wait_line("alarm cleared storage")
    assert gate.stop() == 0
    assert "Traceback" not in gate.log


def test_sigkill_during_admissions_burns_no_ticket(tmp_path, issuer_key, trust_file, scanner):
    state = tmp_path / "state"
    waiting = write_gate_config(tmp_path, trust_file, scanner.port, state, passage_timeout_seconds=60)
    (tmp_path / "slow").mkdir()
    gate = GateProcess(waiting)
    gate.wait_ready(scanner.port)
    first, second = live_ticket(issuer_key), live_ticket(issuer_key)
    _write_persons_passing(waiting, 0)  # nobody walks: the first admission holds the turnstile
    gate.stop()
    gate = GateProcess(waiting)
    gate.wait_ready(scanner.port)
    scanner.scan(first)
    gate.wait_line("decision grant valid", count=1)
    scanner.scan(second)
    gate.wait_line("decision grant valid", count=2)  # committed, queued behind the first, never pulsed
    wait_until(lambda: relay_openings(tmp_path) >= 1, "the first admission's relay opening (its pulse is recorded before)")
    gate.kill()
    _write_persons_passing(waiting, None)
    gate = GateProcess(waiting)
    gate.wait_ready(scanner.port)
    assert "rolled back" in gate.wait_line("interrupted by the last stop (pulsed)")
    assert "rolled back" in gate.wait_line("interrupted by the last stop (never pulsed)")
    scanner.scan(first)
    scanner.scan(second)
    gate.wait_line("visitor GRANT reason=valid", count=2)
    assert gate.stop() == 0
    with GateStore.open(state) as store:
        kinds = [event.kind for event in store.pending_events()]
        assert kinds.count("rollback") == 2 and kinds.count("admission") == 4 and store.open_admissions() == []


def _write_persons_passing(config: Path, persons: int | None) -> None:
    text = "\n".join(line for line in config.read_text().splitlines() if not line.startswith("persons_passing"))
    if persons is not None:
        text = text.replace("[turnstile.sim]", f"[turnstile.sim]\npersons_passing = {persons}")
    config.write_text(text + "\n")
