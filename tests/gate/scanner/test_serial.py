"""Serial scanner modules over a real pty pair: a fake scanner writes to the master end."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.scanner import SerialSettings, SettingsError, open_scanner
from gate.scanner.serial_scanner import SerialScanner
from gate.serialport import open_serial_port
from testkit.ptys import RawPty

from .conftest import WAIT, ScannerThread


@pytest.fixture
def module() -> Iterator[RawPty]:
    """The scanner end of the cable: the test writes bytes into the pty's master side."""
    fake = RawPty()
    yield fake
    fake.close()


def plug(link: Path, module: RawPty) -> None:
    """Point the stable name (as a udev rule would) at this module's tty."""
    staging = link.with_suffix(".new")
    staging.symlink_to(module.port)
    os.replace(staging, link)


def start(run_scanner: Callable[..., ScannerThread], port: str, **settings: Any) -> ScannerThread:
    scanner = open_scanner(SerialSettings(port=port, reopen_backoff=0.02, reopen_backoff_max=0.1, **settings))
    runner = run_scanner(scanner)
    assert scanner.wait_for_health(lambda health: health.ok, WAIT), scanner.health()
    return runner


def test_code_sent_by_the_module_is_one_scan_with_its_source(run_scanner, module: RawPty, tickets: list[str]) -> None:
    runner = start(run_scanner, module.port)
    module.write(tickets[0].encode() + b"\r")
    scan = runner.scans.get(timeout=WAIT)
    assert (scan.text, scan.source) == (tickets[0], f"serial:{module.port}")


def test_repeated_reads_of_a_held_code_are_one_scan(run_scanner, module: RawPty, tickets: list[str]) -> None:
    runner = start(run_scanner, module.port, terminator="CRLF")
    module.write(((tickets[0] + "\r\n") * 5 + tickets[1] + "\r\n").encode())
    assert [runner.next_text(), runner.next_text()] == tickets[:2]


def test_noise_and_over_long_lines_are_dropped_and_counted_in_health(run_scanner, module: RawPty, tickets: list[str]) -> None:
    runner = start(run_scanner, module.port, max_line=300)
    module.write(b"\x00\xff\x13garbage\r")
    module.write(b"X" * 5000 + b"\r")
    module.write(tickets[0].encode() + b"\r")
    assert runner.next_text() == tickets[0]
    health = runner.scanner.health()
    assert health.rejected_count == 2 and health.scan_count == 1 and health.ok


def test_partial_line_yields_nothing_and_does_not_spoil_the_next_code(run_scanner, module: RawPty, tickets: list[str]) -> None:
    runner = start(run_scanner, module.port, partial_timeout=0.1)
    module.write(tickets[0][:50].encode())
    assert runner.nothing_within(0.3)
    module.write(tickets[1].encode() + b"\r")
    assert runner.next_text() == tickets[1]
    assert runner.scanner.health().rejected_count == 1


def test_module_unplugged_and_plugged_back_is_reopened_and_reported_unhealthy_meanwhile(run_scanner, tmp_path: Path, module: RawPty, tickets: list[str]) -> None:
    link = tmp_path / "ttyScanner"
    plug(link, module)
    runner = start(run_scanner, str(link))
    module.write(tickets[0].encode() + b"\r")
    assert runner.next_text() == tickets[0]

    module.unplug()
    down = runner.scanner.wait_for_health(lambda health: not health.ok, WAIT)
    assert down is not None and str(link) in down.detail

    replacement = RawPty()
    try:
        plug(link, replacement)
        up = runner.scanner.wait_for_health(lambda health: health.ok and health.reopen_count >= 1, WAIT)
        assert up is not None
        replacement.write(tickets[1].encode() + b"\r")
        assert runner.next_text() == tickets[1]
    finally:
        runner.stop_and_join()
        replacement.close()


def test_missing_port_keeps_retrying_and_health_names_it(run_scanner, tmp_path: Path) -> None:
    missing = tmp_path / "ttyACM9"
    scanner = open_scanner(SerialSettings(port=str(missing), reopen_backoff=0.01, reopen_backoff_max=0.02))
    run_scanner(scanner)
    health = scanner.wait_for_health(lambda h: not h.ok and str(missing) in h.detail, WAIT)
    assert health is not None and "cannot open" in health.detail


def test_a_port_held_by_another_program_is_reported_busy_and_opened_once_released(run_scanner, module: RawPty, tickets: list[str]) -> None:
    holder = open_serial_port(module.port)  # a second daemon or a stray `screen` session
    try:
        scanner = open_scanner(SerialSettings(port=module.port, reopen_backoff=0.02, reopen_backoff_max=0.1))
        runner = run_scanner(scanner)
        busy = scanner.wait_for_health(lambda h: not h.ok and "cannot open" in h.detail, WAIT)
        assert busy is not None and module.port in busy.detail
    finally:
        holder.close()
    assert scanner.wait_for_health(lambda h: h.ok, WAIT)
    module.write(tickets[0].encode() + b"\r")
    assert runner.next_text() == tickets[0]


def test_pyserial_urls_open_through_the_same_function() -> None:
    port = open_serial_port("loop://", baudrate=115200, timeout=1.0)
    try:
        port.write(b"LT1:LOOP\r")
        assert port.read(9) == b"LT1:LOOP\r"
    finally:
        port.close()


def test_bad_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(SettingsError, match="terminator"):
        SerialSettings(port="/dev/ttyUSB0", terminator="NUL")
    with pytest.raises(SettingsError, match="port"):
        SerialSettings(port="")


def test_factory_builds_a_serial_scanner_without_opening_the_port(tmp_path: Path) -> None:
    scanner = open_scanner(SerialSettings(port=str(tmp_path / "absent")))
    assert isinstance(scanner, SerialScanner)
    assert scanner.health().ok is False and scanner.health().detail == "not opened yet"
