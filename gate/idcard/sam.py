"""Resident-ID readers that expose their security module (SAM) on a serial or USB-serial port.

The host side of the framing, as the readers' SAM_V communication protocol documents it
(the bytes are the same whatever the brand; docs/realname.md cites the sources):

    to the reader:   AA AA AA 96 69 | len (2, big-endian) | CMD | Para | data | CHK
    from the reader: AA AA AA 96 69 | len (2, big-endian) | SW1 | SW2 | SW3 | data | CHK

``len`` counts everything after itself, the checksum included; CHK is the XOR of every
byte after the preamble and before CHK. A card is read by three commands: find (20 01:
SW3 9F found, 80 none in the field), select (20 02: 90 selected) and read base information
(30 01: 90, then text length, photo length, the 256-byte text file of GA/T 490 and the
1024-byte photo). The module's status (11 FF: 90) is asked once on opening, so a wrong
port or baud rate is reported at once. Only the ID-number field of the text is decoded; the name and address are
never decoded and the photo bytes are skipped, never decoded, kept or passed on.

The reader is a DeviceScanner: one thread polls it, a card left on it is reported once
(dedupe), an unplugged reader is reopened with backoff, and its health is reported like a
scanner's. Each reading's text is the ID number, so it must never be logged.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import serial

from gate.scanner.backoff import Backoff
from gate.scanner.base import DeviceScanner, Reading
from gate.scanner.errors import ScannerUnavailable, SettingsError
from gate.serialport import PORT_ERRORS, SerialPortUnavailable, close_serial_port, open_serial_port

log = logging.getLogger(__name__)

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
MAX_FRAME_LENGTH = 4096  # base information with fingerprints is 2321 bytes; anything longer is noise
TEXT_LENGTH = 256
NUMBER_OFFSET = 122  # the ID-number field starts here on every card type the reader returns
NUMBER_BYTES = {" ": 36, "J": 36, "I": 30}  # resident ID, HK/Macau/Taiwan residence permit, foreigner's permanent residence card
CARD_TYPE_OFFSET = 248


class Command(bytes, enum.Enum):
    STATUS = b"\x11\xff"
    FIND = b"\x20\x01"
    SELECT = b"\x20\x02"
    READ_BASE = b"\x30\x01"


class Status(enum.IntEnum):
    """SW3, the reader's own status byte (the ones the loop acts on)."""

    OK = 0x90
    FOUND = 0x9F
    NO_CARD = 0x80
    SELECT_FAILED = 0x81
    READ_FAILED = 0x41


class FrameError(Exception):
    """A reply that is not a well-formed frame: bad length or checksum."""


@dataclass(frozen=True)
class SamSettings:
    """``port``: a device (/dev/serial/by-id/...), a pty or a pyserial URL. Most readers
    talk at 115200 baud. ``poll_seconds`` is the pause between "find card" requests;
    ``response_timeout`` the longest wait for an answer before the reader counts as gone."""

    port: str
    baudrate: int = 115200
    poll_seconds: float = 0.2
    response_timeout: float = 1.0
    dedupe_seconds: float = 1.0  # a card lifted and laid again this much later is read again (a retry)
    reopen_backoff: float = 0.5
    reopen_backoff_max: float = 10.0

    def __post_init__(self) -> None:
        if not self.port:
            raise SettingsError("sam.port must name a device, pty or pyserial URL")
        if self.baudrate <= 0 or self.poll_seconds <= 0 or self.response_timeout <= 0 or self.dedupe_seconds < 0:
            raise SettingsError("sam: baudrate, poll_seconds and response_timeout must be positive, dedupe_seconds >= 0")
        if not 0 < self.reopen_backoff <= self.reopen_backoff_max:
            raise SettingsError(f"sam: need 0 < reopen_backoff ({self.reopen_backoff}) <= reopen_backoff_max ({self.reopen_backoff_max})")


def checksum(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def command_frame(command: Command, data: bytes = b"") -> bytes:
    body = (len(command.value) + len(data) + 1).to_bytes(2, "big") + command.value + data
    return PREAMBLE + body + bytes([checksum(body)])


def reply_frame(status: int, data: bytes = b"") -> bytes:
    """A reader's reply (SW1 = SW2 = 0): what the test reader sends."""
    body = (3 + len(data) + 1).to_bytes(2, "big") + bytes([0, 0, status]) + data
    return PREAMBLE + body + bytes([checksum(body)])


def id_number_from_base_info(data: bytes) -> str | None:
    """The ID number in a read-base-information reply's data, or None for a card type whose
    layout is unknown here. Skips the photo without looking at it."""
    if len(data) < 4 + TEXT_LENGTH:
        raise FrameError(f"base information is {len(data)} bytes, expected at least {4 + TEXT_LENGTH}")
    text_length = int.from_bytes(data[0:2], "big")
    if text_length != TEXT_LENGTH:
        raise FrameError(f"text file is {text_length} bytes, expected {TEXT_LENGTH}")
    text = data[4:4 + TEXT_LENGTH]
    card_type = text[CARD_TYPE_OFFSET:CARD_TYPE_OFFSET + 2].decode("utf-16-le", "replace").replace("\x00", " ")
    size = NUMBER_BYTES.get(card_type)
    if size is None:
        return None
    return text[NUMBER_OFFSET:NUMBER_OFFSET + size].decode("utf-16-le", "replace").replace("\x00", " ").strip()


class SamCardReader(DeviceScanner):
    """ID numbers from cards laid on a SAM reader; see DeviceScanner for the thread contract."""

    def __init__(self, settings: SamSettings) -> None:
        super().__init__(f"sam:{settings.port}", settings.dedupe_seconds, Backoff(settings.reopen_backoff, settings.reopen_backoff_max))
        self.settings = settings
        self._port: serial.SerialBase | None = None

    def _open(self) -> None:
        try:
            self._port = open_serial_port(self.settings.port, self.settings.baudrate, self.settings.response_timeout)
        except SerialPortUnavailable as error:
            raise ScannerUnavailable(f"{self.source}: cannot open: {error.reason}") from error
        try:
            status = self._transact(Command.STATUS)[0]
        except (ScannerUnavailable, FrameError) as error:
            self._release()
            raise ScannerUnavailable(f"{self.source}: not answering as an ID-card reader at {self.settings.baudrate} baud ({error})") from error
        if status != Status.OK:
            self._release()
            raise ScannerUnavailable(f"{self.source}: the reader's security module reports status {status:02x}")

    def _release(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            close_serial_port(port, self.settings.port)

    def _readings(self, stop: threading.Event) -> Iterator[Reading]:
        while not stop.is_set():
            number = self._read_card()
            if number is not None:
                yield Reading(number, time.monotonic())
            stop.wait(self.settings.poll_seconds)

    def _read_card(self) -> str | None:
        """One find / select / read round; None when no card (or an unreadable one) is there."""
        try:
            if self._transact(Command.FIND)[0] != Status.FOUND:
                return None
            if self._transact(Command.SELECT)[0] != Status.OK:
                return None
            status, data = self._transact(Command.READ_BASE)
            if status != Status.OK:
                log.info("%s: card found but not read (status %02x); lay it flat on the reader again", self.source, status)
                return None
            number = id_number_from_base_info(data)
        except FrameError as error:
            log.warning("%s: garbled reply from the reader (%s); retrying", self.source, error)
            self._tracker.rejected()
            return None
        if number is None:
            log.info("%s: card of a type this gate cannot read the number from; check it by hand", self.source)
            self._tracker.rejected()
        return number

    def _transact(self, command: Command) -> tuple[int, bytes]:
        port = self._port
        assert port is not None, "_transact runs only after _open succeeded"
        try:
            port.reset_input_buffer()
            port.write(command_frame(command))
            return self._reply(port)
        except PORT_ERRORS as error:
            raise ScannerUnavailable(f"{self.source}: read failed (unplugged?): {error}") from error

    def _reply(self, port: serial.SerialBase) -> tuple[int, bytes]:
        """Read one reply frame: skip to the preamble, then length, body and checksum."""
        window = b""
        deadline = time.monotonic() + self.settings.response_timeout
        while window != PREAMBLE:
            byte = port.read(1)
            if not byte or time.monotonic() > deadline:
                raise ScannerUnavailable(f"{self.source}: no answer from the reader within {self.settings.response_timeout} s")
            window = (window + byte)[-len(PREAMBLE):]
        length_bytes = self._exactly(port, 2)
        length = int.from_bytes(length_bytes, "big")
        if not 4 <= length <= MAX_FRAME_LENGTH:
            raise FrameError(f"reply length {length} is outside 4..{MAX_FRAME_LENGTH}")
        body = self._exactly(port, length)
        if checksum(length_bytes + body[:-1]) != body[-1]:
            raise FrameError("reply checksum does not match")
        return body[2], body[3:-1]

    def _exactly(self, port: serial.SerialBase, count: int) -> bytes:
        data = port.read(count)
        if len(data) != count:
            raise FrameError(f"reply cut short: {len(data)} of {count} bytes")
        return data
