"""Using the serial ports that relay boards hang on: frames out, exact answers back.

:func:`open_relay_port` opens a port through the gate's one
:func:`gate.serialport.open_serial_port` (shared with the serial scanners): a device path (/dev/ttyUSB0, /dev/serial/by-id/...), a pty path or
any pyserial URL (``loop://``, ``spy://...``, ``socket://host:port``), locked against a
second user, so tests and diagnostics drive the same board code as production. Here
every failure becomes a :class:`RelayError` naming the port: an unplugged USB adapter is
one clear line.
"""

from __future__ import annotations

import serial

from gate.serialport import PORT_ERRORS, SerialPortUnavailable, open_serial_port
from gate.turnstile.errors import RelayError


def open_relay_port(port: str, baudrate: int = 9600, timeout: float = 0.3) -> serial.SerialBase:
    """Open a relay board's ``port`` 8N1 with a read timeout of ``timeout`` seconds (and the same
    write timeout, so a wedged adapter cannot block a relay command forever). Raises :class:`RelayError`."""
    try:
        return open_serial_port(port, baudrate, timeout, write_timeout=timeout)
    except SerialPortUnavailable as exc:
        raise RelayError(str(exc)) from exc


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
