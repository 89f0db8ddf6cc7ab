"""Keyboard-wedge scanners through evdev: a thin wrapper around the pure KeyMapper.

The device is grabbed exclusively (EVIOCGRAB): without it every code would
also be typed into whatever has the console, a login prompt included.
"""

from __future__ import annotations

import errno
import logging
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from evdev import InputDevice, InputEvent

from .backoff import Backoff
from .base import DeviceScanner, Reading
from .errors import ScannerUnavailable, SettingsError
from .keymap import KeyMapper, key_codes
from .settings import HidSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # select timeout: how soon a stop request is noticed


class EventDevice(Protocol):
    """What HidScanner needs of evdev.InputDevice (tests pass a pipe-backed evdev EventIO)."""

    fd: int

    def read(self) -> Iterable[InputEvent]: ...

    def grab(self) -> None: ...

    def close(self) -> None: ...


def open_input_device(path: str) -> EventDevice:
    """Open an event device; ScannerUnavailable explains the usual permission problem."""
    try:
        return InputDevice(path)
    except PermissionError as error:
        raise ScannerUnavailable(f"hid:{path}: permission denied; the service user needs the 'input' group or a udev rule (docs/scanners.md): {error}") from error
    except OSError as error:
        raise ScannerUnavailable(f"hid:{path}: cannot open: {error}") from error


class HidScanner(DeviceScanner):
    """Codes typed by a keyboard-wedge scanner; see DeviceScanner for the thread and stop contract."""

    def __init__(self, settings: HidSettings, open_device: Callable[[str], EventDevice] = open_input_device) -> None:
        super().__init__(
            f"hid:{settings.device}",
            settings.dedupe_seconds,
            Backoff(settings.reopen_backoff, settings.reopen_backoff_max),
        )
        try:
            self._end_keys = key_codes(settings.end_keys)
        except ValueError as error:
            raise SettingsError(f"hid.end_keys: {error}") from None
        self.settings = settings
        self._open_device = open_device
        self._device: EventDevice | None = None
        self._keys: KeyMapper | None = None

    def _open(self) -> None:
        device = self._open_device(self.settings.device)
        if self.settings.grab:
            try:
                device.grab()
            except OSError as error:
                device.close()
                raise ScannerUnavailable(f"{self.source}: cannot grab it exclusively (another program holds it?): {error}") from error
        self._device = device
        # A fresh mapper per connection: no Shift held or half code survives an unplug.
        self._keys = KeyMapper(self._end_keys, self.settings.max_code, self.settings.partial_timeout, self.source)

    def _release(self) -> None:
        if self._device is not None:
            device, self._device = self._device, None
            try:
                device.close()  # closing also ends the grab
            except OSError as error:
                log.debug("%s: error while closing: %s", self.source, error)

    def _readings(self, stop: threading.Event) -> Iterator[Reading]:
        device, keys = self._device, self._keys
        assert device is not None and keys is not None, "_readings runs only after _open succeeded"
        while not stop.is_set():
            ready, _, _ = select.select([device.fd], [], [], POLL_SECONDS)
            if not ready:
                continue
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            except OSError as error:
                gone = "unplugged" if error.errno == errno.ENODEV else "read failed"
                raise ScannerUnavailable(f"{self.source}: {gone}: {error}") from error
            for event in events:
                rejected = keys.rejected
                text = keys.feed(event)
                if keys.rejected != rejected:
                    self._tracker.rejected()
                if text is not None:
                    yield Reading(text, time.monotonic())
