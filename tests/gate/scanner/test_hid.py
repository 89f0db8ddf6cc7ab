"""The keyboard-wedge scanner loop over a pipe that speaks the evdev wire format.

This machine has no /dev/input, so the device at the bottom is an evdev
EventIO whose fd is a pipe: the test writes real ``struct input_event``
records, and evdev's own reader parses them, as it would from the kernel.
"""

from __future__ import annotations

import errno
import os
import queue
import select
import struct
from pathlib import Path

import pytest
from evdev import InputEvent
from evdev.eventio import EventIO

from gate.scanner import HidSettings, ScannerUnavailable, SettingsError, open_scanner
from gate.scanner.hid import HidScanner, open_input_device

from .conftest import WAIT
from .test_keymap import Keyboard

INPUT_EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux
EVENTS_PER_WRITE = select.PIPE_BUF // INPUT_EVENT.size


class PipeInputDevice(EventIO):
    """An event device whose kernel end is a pipe the test writes into."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd, self._writer = os.pipe()
        os.set_blocking(self.fd, False)
        self.grabbed = False

    def grab(self) -> None:
        self.grabbed = True

    def read(self):  # type: ignore[override]
        events = list(super().read())
        if not events:  # the pipe hit end of file: what an unplugged device reports
            raise OSError(errno.ENODEV, "No such device")
        return events

    def type(self, events: list[InputEvent]) -> None:
        # Writes of at most PIPE_BUF bytes are atomic, so a read never splits an event record
        # (the kernel never does; a pipe would if one big write were drained in pieces).
        for start in range(0, len(events), EVENTS_PER_WRITE):
            chunk = events[start : start + EVENTS_PER_WRITE]
            os.write(self._writer, b"".join(INPUT_EVENT.pack(e.sec, e.usec, e.type, e.code, e.value) for e in chunk))

    def unplug(self) -> None:
        os.close(self._writer)

    def close(self) -> None:
        if self.fd > -1:
            os.close(self.fd)
            self.fd = -1


class Port:
    """The USB port: hands the scanner the device plugged in now, or fails like a missing node."""

    def __init__(self) -> None:
        self.plugged: queue.Queue[PipeInputDevice] = queue.Queue()
        self.opened: list[PipeInputDevice] = []

    def open(self, path: str) -> PipeInputDevice:
        try:
            device = self.plugged.get_nowait()
        except queue.Empty:
            raise ScannerUnavailable(f"hid:{path}: cannot open: no such device") from None
        self.opened.append(device)
        return device


def test_typed_code_is_one_scan_and_the_device_is_grabbed(run_scanner, tickets: list[str]) -> None:
    port, device = Port(), PipeInputDevice("/dev/input/event3")
    port.plugged.put(device)
    scanner = HidScanner(HidSettings(device="/dev/input/event3"), open_device=port.open)
    runner = run_scanner(scanner)
    assert scanner.wait_for_health(lambda h: h.ok, WAIT)
    keyboard = Keyboard()
    device.type(keyboard.type(tickets[0]) + keyboard.type(tickets[0]) + keyboard.type(tickets[1]))
    first = runner.scans.get(timeout=WAIT)
    assert (first.text, first.source) == (tickets[0], "hid:/dev/input/event3")
    assert runner.next_text() == tickets[1]  # the repeat of the first was suppressed
    assert device.grabbed


def test_unplugged_scanner_is_reopened_and_a_half_typed_code_is_not_glued_on(run_scanner, tickets: list[str]) -> None:
    port, first = Port(), PipeInputDevice("/dev/input/by-id/usb-scanner-event-kbd")
    port.plugged.put(first)
    scanner = HidScanner(HidSettings(device=first.path, reopen_backoff=0.01, reopen_backoff_max=0.05), open_device=port.open)
    runner = run_scanner(scanner)
    assert scanner.wait_for_health(lambda h: h.ok, WAIT)
    first.type(Keyboard().type(tickets[0])[:40])  # pulled out mid-code
    first.unplug()
    assert scanner.wait_for_health(lambda h: not h.ok and "unplugged" in h.detail, WAIT)

    second = PipeInputDevice(first.path)
    port.plugged.put(second)
    assert scanner.wait_for_health(lambda h: h.ok and h.reopen_count == 1, WAIT)
    second.type(Keyboard().type(tickets[1]))
    assert runner.next_text() == tickets[1]
    assert second.grabbed and first.fd == -1  # the old device was closed


def test_device_another_program_holds_is_reported_unhealthy(run_scanner) -> None:
    class HeldDevice(PipeInputDevice):
        def grab(self) -> None:
            raise OSError(errno.EBUSY, "Device or resource busy")

    port = Port()
    port.plugged.put(HeldDevice("/dev/input/event5"))
    scanner = HidScanner(HidSettings(device="/dev/input/event5", reopen_backoff=0.01, reopen_backoff_max=0.02), open_device=port.open)
    run_scanner(scanner)
    health = scanner.wait_for_health(lambda h: "cannot grab" in h.detail, WAIT)
    assert health is not None and not health.ok and port.opened[0].fd == -1


def test_opening_a_missing_or_non_input_device_names_it(tmp_path: Path) -> None:
    with pytest.raises(ScannerUnavailable, match="event99"):
        open_input_device(str(tmp_path / "event99"))
    not_a_device = tmp_path / "event0"
    not_a_device.write_bytes(b"")
    with pytest.raises(ScannerUnavailable, match="event0"):
        open_input_device(str(not_a_device))


def test_unknown_end_key_in_settings_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError, match="KEY_RETURN"):
        open_scanner(HidSettings(device="/dev/input/event3", end_keys=("KEY_RETURN",)))


def test_factory_builds_a_hid_scanner_that_grabs_by_default() -> None:
    scanner = open_scanner(HidSettings(device="/dev/input/event3"))
    assert isinstance(scanner, HidScanner) and scanner.settings.grab
