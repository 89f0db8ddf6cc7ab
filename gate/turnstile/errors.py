"""Every exception the turnstile layer raises, in one place.

Each is raised with a message that names the device at fault (the GPIO chip and line,
the serial port, the Modbus slave), so the one line the daemon logs is enough to walk
to the right cable.
"""

from __future__ import annotations


class TurnstileError(Exception):
    """Base class: anything that went wrong with the turnstile hardware or its use."""


class LineError(TurnstileError):
    """A digital line could not be opened, read, written or polled, or was misused
    (writing an input, driving an output)."""


class RelayError(TurnstileError):
    """A relay could not be switched: the board is unplugged, silent or refused the command."""


class BoardProtocolError(RelayError):
    """A relay board answered, but not in its protocol: wrong checksum or CRC, wrong
    echo, wrong length. Usually wiring noise, a wrong baud rate or a wrong slave address."""


class ModbusExceptionResponse(BoardProtocolError):
    """A Modbus slave answered with an exception response (function | 0x80)."""

    def __init__(self, message: str, function: int, code: int) -> None:
        super().__init__(message)
        self.function = function
        self.code = code


class SensorError(TurnstileError):
    """The passage sensor could not be read."""
