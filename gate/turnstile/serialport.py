"""Opening and using the serial ports that relay boards hang on, the pyserial way.

:func:`open_serial_port` accepts a device path (/dev/ttyUSB0, /dev/serial/by-id/...), a
pty path, or any pyserial URL (``loop://``, ``spy://...``, ``socket://host:port``), so
tests and diagnostics drive the same board code as production. Every failure becomes a
:class:`RelayError` naming the port: an unplugged USB adapter is one clear line.
"""

from __future__ import annotations

import logging
import termios

import serial

from gate.turnstile.errors import RelayError

log = logging.getLogger(__name__)

# termios.error is not an OSError: a flush on an unplugged adapter raises it (EIO).
PORT_ERRORS = (serial.SerialException, OSError, termios.error)


def open_serial_port(port: str, baudrate: int = 9600, timeout: float = 0.3) -> serial.SerialBase:
    """Open ``port`` 8N1 with a read timeout of ``timeout`` seconds (and the same write timeout,
    so a wedged adapter cannot block a relay command forever)."""
    try:
        handle = serial.serial_for_url(port, baudrate=baudrate, timeout=timeout, write_timeout=timeout)
    except (*PORT_ERRORS, ValueError) as exc:
        raise RelayError(f"cannot open serial port {port}: {exc}") from exc
    log.debug("opened serial port %s at %d baud", port, baudrate)
    return handle


def write_frame(handle: serial.SerialBase, port: str, frame: bytes) -> None:
    """Write all of ``frame`` and wait until it left the buffer."""
    try:
        written = handle.write(frame)
        handle.flush()
    except PORT_ERRORS as exc:
        raise RelayError(f"cannot write to serial port {port} (unplugged?): {exc}") from exc
    if written is not None and written != len(frame):
        raise RelayError(f"serial port {port} took {written} of {len(frame)} bytes")


def read_exact(handle: serial.SerialBase, port: str, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes or raise: a short read means the device stayed silent
    past the port's timeout."""
    try:
        data = bytes(handle.read(size))
    except PORT_ERRORS as exc:
        raise RelayError(f"cannot read from serial port {port} (unplugged?): {exc}") from exc
    if len(data) != size:
        raise RelayError(f"{what} on {port} did not answer within {handle.timeout} s "
                         f"(got {len(data)} of {size} bytes: {data.hex(' ') or 'nothing'})")
    return data


def discard_input(handle: serial.SerialBase, port: str) -> None:
    """Drop stale bytes (a late answer to an earlier, timed-out request)."""
    try:
        handle.reset_input_buffer()
    except PORT_ERRORS as exc:
        raise RelayError(f"cannot use serial port {port} (unplugged?): {exc}") from exc


def close_serial_port(handle: serial.SerialBase, port: str) -> None:
    try:
        handle.close()
    except PORT_ERRORS as exc:
        log.warning("closing serial port %s failed: %s", port, exc)
