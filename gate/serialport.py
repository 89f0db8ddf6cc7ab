"""Opening serial ports, for every edge of the gate that has one: scanner modules and relay boards.

:func:`open_serial_port` takes a device path (/dev/ttyUSB0, /dev/serial/by-id/...), a
pty path or any pyserial URL (``loop://``, ``spy://...``, ``socket://host:port``,
``rfc2217://...``), so tests and diagnostics drive the same reader and board code as a
gate. Ports are opened exclusively (``flock``): a second daemon or a stray ``screen``
session cannot silently steal half the lines or interleave its own relay commands.

Each failure is a :class:`SerialPortUnavailable` naming the port; the scanner and the
turnstile turn it into their own error (``ScannerUnavailable``, ``RelayError``), so this
module knows nothing of either.
"""

from __future__ import annotations

import logging
import termios

import serial

log = logging.getLogger(__name__)

# termios.error is not an OSError: a flush or attribute change on an unplugged adapter raises it (EIO).
PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
OPEN_ERRORS: tuple[type[BaseException], ...] = (*PORT_ERRORS, ValueError)  # ValueError: a malformed URL or setting


class SerialPortUnavailable(Exception):
    """The port could not be opened: missing, unplugged, busy (held by another process) or
    not permitted. The message names the port; ``reason`` is pyserial's own account."""

    def __init__(self, port: str, reason: str) -> None:
        super().__init__(f"cannot open serial port {port}: {reason}")
        self.port = port
        self.reason = reason


def open_serial_port(port: str, baudrate: int = 9600, timeout: float | None = 0.1,
                     write_timeout: float | None = None) -> serial.SerialBase:
    """Open ``port`` 8N1, exclusively, with a read timeout of ``timeout`` seconds.

    ``write_timeout`` bounds a write (None: a write may block until the bytes are out);
    relay boards set it so a wedged adapter cannot block a relay command forever.
    Raises :class:`SerialPortUnavailable`.
    """
    try:
        handle = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout, write_timeout=write_timeout,
                                       exclusive=True)
    except OPEN_ERRORS as exc:
        raise SerialPortUnavailable(port, str(exc)) from exc
    log.debug("opened serial port %s at %d baud", port, baudrate)
    return handle


def close_serial_port(handle: serial.SerialBase, port: str) -> None:
    """Close ``handle``; a failure is logged, never raised: the port is gone either way
    (typically it was unplugged, which was already reported when it failed)."""
    try:
        handle.close()
    except PORT_ERRORS as exc:
        log.debug("closing serial port %s failed: %s", port, exc)
