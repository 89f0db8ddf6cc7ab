"""Modbus RTU relay modules on RS-485: coils are relays, a discrete input counts passages.

Only what a relay module needs: function 05 (Write Single Coil, FF00 on / 0000 off,
answered by an echo of the request) and function 02 (Read Discrete Inputs). Every answer
is checked: CRC-16/Modbus, slave address, function, echo. A mismatch is a
:class:`BoardProtocolError`, an exception response a :class:`ModbusExceptionResponse`,
silence a :class:`RelayError`; each message names the slave and the port.

Character format: 8 data bits with parity and stop bits as the module is set up
(``parity`` "none", "even" or "odd"; ``stop_bits`` 1 or 2). The Modbus serial line
specification asks for 11-bit characters, 8E1 by default or 8N2; many cheap relay
modules ship as 8N1, which is why that is the default here.

Thread guarantees: a module serialises its transactions with a lock, so relay commands
from the turnstile and input polls from the passage sensor can share one bus.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from gate.turnstile.errors import BoardProtocolError, ModbusExceptionResponse, RelayError
from gate.turnstile.relays import Relay
from gate.serialport import PORT_ERRORS, close_serial_port
from gate.turnstile.relay_port import discard_input, open_relay_port, read_exact, write_frame

log = logging.getLogger(__name__)

# Parity names as in the config, and pyserial's values for them.
PARITIES = {"none": "N", "even": "E", "odd": "O"}
STOP_BITS = (1, 2)

WRITE_SINGLE_COIL = 0x05
READ_DISCRETE_INPUTS = 0x02
COIL_ON = 0xFF00
COIL_OFF = 0x0000
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
}


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/Modbus (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16_modbus(frame[:-2]).to_bytes(2, "little") == frame[-2:]


def write_coil_request(slave: int, address: int, on: bool) -> bytes:
    """The 8-byte function 05 frame; ``write_coil_request(1, 0, True).hex()`` is ``01050000ff008c3a``."""
    return with_crc(bytes((slave, WRITE_SINGLE_COIL)) + address.to_bytes(2, "big")
                    + (COIL_ON if on else COIL_OFF).to_bytes(2, "big"))


def read_discrete_inputs_request(slave: int, address: int, count: int) -> bytes:
    return with_crc(bytes((slave, READ_DISCRETE_INPUTS)) + address.to_bytes(2, "big") + count.to_bytes(2, "big"))


class ModbusRelayModule:
    """One slave on an RS-485 bus (the port is opened here and owned by the module)."""

    def __init__(self, port: str, slave: int = 1, baudrate: int = 9600, timeout: float = 0.3, retries: int = 1,
                 parity: str = "none", stop_bits: int = 1) -> None:
        if parity not in PARITIES or stop_bits not in STOP_BITS:
            raise ValueError(f"parity must be one of {', '.join(PARITIES)} and stop_bits 1 or 2, got {parity!r}, {stop_bits!r}")
        self.port = port
        self.slave = slave
        self.retries = retries
        self._what = f"modbus slave {slave}"
        self._handle = open_relay_port(port, baudrate, timeout)
        try:
            # pyserial reconfigures an open port on assignment (termios on a tty or pty).
            self._handle.parity = PARITIES[parity]
            self._handle.stopbits = stop_bits
        except PORT_ERRORS + (ValueError,) as exc:
            close_serial_port(self._handle, port)
            raise RelayError(f"serial port {port}: cannot set 8{PARITIES[parity]}{stop_bits}: {exc}") from exc
        self._lock = threading.Lock()

    @property
    def character_format(self) -> str:
        """The port's character format as set, e.g. "8E1" (for logs and the technician's tests)."""
        return f"{self._handle.bytesize}{self._handle.parity}{self._handle.stopbits}"

    def write_coil(self, address: int, on: bool) -> None:
        """Switch coil ``address``; returns once the slave echoed the command."""
        request = write_coil_request(self.slave, address, on)

        def read_answer() -> None:
            answer = self._read_head(WRITE_SINGLE_COIL, request)
            answer += read_exact(self._handle, self.port, 6, self._what)
            self._check_crc(answer)
            if answer != request:
                raise BoardProtocolError(f"{self._what} on {self.port}: echo {answer.hex(' ')} "
                                         f"does not match request {request.hex(' ')}")

        self._transact(request, read_answer)

    def read_discrete_inputs(self, address: int, count: int = 1) -> list[bool]:
        """Read ``count`` discrete inputs starting at ``address`` (bit 0 of byte 0 first)."""
        request = read_discrete_inputs_request(self.slave, address, count)
        result: list[bool] = []

        def read_answer() -> None:
            answer = self._read_head(READ_DISCRETE_INPUTS, request)
            size = read_exact(self._handle, self.port, 1, self._what)
            answer += size + read_exact(self._handle, self.port, size[0] + 2, self._what)
            self._check_crc(answer)
            if size[0] != (count + 7) // 8:
                raise BoardProtocolError(f"{self._what} on {self.port}: {size[0]} data bytes for {count} inputs")
            data = answer[3:-2]
            result[:] = [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]

        self._transact(request, read_answer)
        return result

    def close(self) -> None:
        with self._lock:
            close_serial_port(self._handle, self.port)

    def _transact(self, request: bytes, read_answer: Callable[[], None]) -> None:
        with self._lock:
            for attempt in range(self.retries + 1):
                try:
                    discard_input(self._handle, self.port)
                    write_frame(self._handle, self.port, request)
                    read_answer()
                    return
                except ModbusExceptionResponse:
                    raise  # the slave understood and refused: asking again will not help
                except RelayError as exc:
                    if attempt == self.retries:
                        raise
                    log.warning("%s on %s: %s; retrying", self._what, self.port, exc)

    def _read_head(self, function: int, request: bytes) -> bytes:
        head = read_exact(self._handle, self.port, 2, self._what)
        if head[0] != self.slave:
            raise BoardProtocolError(f"{self._what} on {self.port}: answer from slave {head[0]} "
                                     f"to request {request.hex(' ')}")
        if head[1] == function | 0x80:
            frame = head + read_exact(self._handle, self.port, 3, self._what)
            self._check_crc(frame)
            code = frame[2]
            raise ModbusExceptionResponse(
                f"{self._what} on {self.port} refused function {function:02x}: exception {code} "
                f"({EXCEPTION_NAMES.get(code, 'unknown')})", function, code)
        if head[1] != function:
            raise BoardProtocolError(f"{self._what} on {self.port}: answered function {head[1]:02x} "
                                     f"to function {function:02x}")
        return head

    def _check_crc(self, frame: bytes) -> None:
        if not crc_ok(frame):
            raise BoardProtocolError(f"{self._what} on {self.port}: bad CRC in answer {frame.hex(' ')}")


class ModbusRelay(Relay):
    """One coil of a :class:`ModbusRelayModule`."""

    def __init__(self, module: ModbusRelayModule, coil: int, name: str) -> None:
        super().__init__(f"{name} (coil {coil} of modbus slave {module.slave} on {module.port})")
        self.module = module
        self.coil = coil

    def _switch(self, on: bool) -> None:
        self.module.write_coil(self.coil, on)
