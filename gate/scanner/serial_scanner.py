"""Serial scanner modules: one line per code over a UART, USB CDC-ACM or USB-serial port.

Ports are opened by ``gate.serialport.open_serial_port`` (shared with the
relay boards), which takes a device path, a pty path or a pyserial URL alike
and locks the port, so the tests (over a real pty pair or ``loop://``) run
exactly the code a gate runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import serial

from gate.serialport import PORT_ERRORS, SerialPortUnavailable, close_serial_port, open_serial_port

from .backoff import Backoff
from .base import DeviceScanner, Reading
from .errors import ScannerUnavailable
from .text_lines import LineAssembler
from .settings import TERMINATORS, SerialSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # read timeout: how soon a stop request is noticed
CHUNK_BYTES = 4096  # most read at once, so noise floods cannot grow a read buffer


class SerialScanner(DeviceScanner):
    """Lines from a serial scanner module; see DeviceScanner for the thread and stop contract."""

    def __init__(self, settings: SerialSettings) -> None:
        super().__init__(
            f"serial:{settings.port}",
            settings.dedupe_seconds,
            Backoff(settings.reopen_backoff, settings.reopen_backoff_max),
        )
        self.settings = settings
        self._port: serial.SerialBase | None = None
        self._lines: LineAssembler | None = None

    def _open(self) -> None:
        try:
            self._port = open_serial_port(self.settings.port, self.settings.baudrate, POLL_SECONDS)
        except SerialPortUnavailable as error:
            raise ScannerUnavailable(f"{self.source}: cannot open: {error.reason}") from error
        # A fresh assembler per connection: a fragment cut off by an unplug never glues onto the next code.
        self._lines = LineAssembler(TERMINATORS[self.settings.terminator], self.settings.max_line, self.settings.partial_timeout, self.source)

    def _release(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            close_serial_port(port, self.settings.port)

    def _readings(self, stop: threading.Event) -> Iterator[Reading]:
        port, lines = self._port, self._lines
        assert port is not None and lines is not None, "_readings runs only after _open succeeded"
        while not stop.is_set():
            try:
                data = port.read(min(max(1, port.in_waiting), CHUNK_BYTES))
            except PORT_ERRORS as error:
                raise ScannerUnavailable(f"{self.source}: read failed (unplugged?): {error}") from error
            if not data:
                continue
            now = time.monotonic()
            assembled = lines.feed(data, now)
            for _ in range(assembled.rejected):
                self._tracker.rejected()
            for text in assembled.texts:
                yield Reading(text, now)
