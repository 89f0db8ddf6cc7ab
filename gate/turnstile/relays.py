"""Relays: the contact that tells the turnstile (or lock) to let someone through.

A :class:`Relay` is one contact; it is built over a GPIO :class:`~gate.turnstile.gpio_lines.Line`
(:class:`GpioRelay`), a channel of an LCUS USB relay board (:class:`LcusRelay`) or a coil
of a Modbus RTU module (:class:`~gate.turnstile.modbus.ModbusRelay`). Timing (pulse, hold)
is not the relay's business; :class:`~gate.turnstile.turnstile.Turnstile` does it.

Thread guarantees: a relay's ``set`` may be called from any thread; boards serialise
their port with a lock so two relays on one board never interleave frames.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from gate.turnstile.errors import LineError, RelayError
from gate.turnstile.gpio_lines import Line
from gate.serialport import close_serial_port
from gate.turnstile.relay_port import open_relay_port, write_frame

log = logging.getLogger(__name__)


class Relay(ABC):
    """One relay contact. ``is_on`` is the last state successfully commanded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._on = False
        self._lock = threading.Lock()

    @property
    def is_on(self) -> bool:
        return self._on

    def set(self, on: bool) -> None:
        """Energise (``True``) or release the relay; raises :class:`RelayError`."""
        with self._lock:
            self._switch(on)
            self._on = on
        log.debug("%s %s", self.name, "on" if on else "off")

    @abstractmethod
    def _switch(self, on: bool) -> None: ...

    def close(self) -> None:
        """Release the relay's own resources; the contact keeps its last state where the
        hardware allows (boards do, a released GPIO line depends on the chip)."""


class GpioRelay(Relay):
    """A relay driven by a GPIO output line; active-low boards set the line inverted."""

    def __init__(self, line: Line, name: str) -> None:
        super().__init__(name)
        self.line = line

    def _switch(self, on: bool) -> None:
        try:
            self.line.write(on)
        except LineError as exc:
            raise RelayError(f"{self.name}: {exc}") from exc

    def close(self) -> None:
        self.line.close()


LCUS_HEADER = 0xA0


def lcus_frame(channel: int, on: bool) -> bytes:
    """The 4-byte LCUS command: A0, channel (1-based), 01 on / 00 off, and the low byte
    of their sum. ``lcus_frame(1, True) == bytes.fromhex("a00101a2")``."""
    if not 1 <= channel <= 0xFF:
        raise ValueError(f"LCUS channel must be 1..255, got {channel}")
    state = 0x01 if on else 0x00
    return bytes((LCUS_HEADER, channel, state, (LCUS_HEADER + channel + state) & 0xFF))


class LcusBoard:
    """A CH340 "LCUS" USB relay board. The board never answers a command, so a dead
    board is only noticed when the port itself fails (unplugged adapter: EIO)."""

    def __init__(self, port: str, baudrate: int = 9600, timeout: float = 0.3) -> None:
        self.port = port
        self._handle = open_relay_port(port, baudrate, timeout)
        self._lock = threading.Lock()

    def set_channel(self, channel: int, on: bool) -> None:
        frame = lcus_frame(channel, on)
        with self._lock:
            write_frame(self._handle, self.port, frame)

    def close(self) -> None:
        with self._lock:
            close_serial_port(self._handle, self.port)


class LcusRelay(Relay):
    """One channel of an :class:`LcusBoard`."""

    def __init__(self, board: LcusBoard, channel: int, name: str) -> None:
        super().__init__(f"{name} (LCUS channel {channel} on {board.port})")
        self.board = board
        self.channel = channel

    def _switch(self, on: bool) -> None:
        try:
            self.board.set_channel(self.channel, on)
        except RelayError as exc:
            raise RelayError(f"{self.name}: {exc}") from exc
