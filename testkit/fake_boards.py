"""Fake relay boards on the far end of a real pty, for tests and bench diagnostics.

Each board opens a pseudo-terminal pair: the code under test opens :attr:`PtyBoard.port`
(a real tty path) with the production serial code, and the board answers from its own
thread, speaking and *checking* the real byte protocol. A malformed frame is recorded in
:attr:`PtyBoard.errors` (and :meth:`PtyBoard.check` fails the test), or answered the way
real hardware answers (a Modbus exception response, or silence for a bad CRC).

These are not part of the turnstile stack (that one's only fake is ``FakeLine``); they
stand where the hardware would, on the other side of a real serial port.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
import select
import threading
from collections import deque
from typing import Callable, Self

from testkit.ptys import RawPty


def crc16_modbus_bitwise(data: bytes) -> int:
    """CRC-16/Modbus computed bit by bit: written apart from the production table-driven
    version so the two check each other."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class PtyBoard(ABC):
    """A device thread behind a pty. Subclasses implement :meth:`_receive` (called with
    each chunk read, in the board thread, under the board's condition)."""

    def __init__(self) -> None:
        self._pty = RawPty()
        self._master = self._pty.master
        self.port = self._pty.port
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"fake-board {self.port}", daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
        """Block until ``predicate()`` (evaluated under the board's lock) holds."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def check(self) -> None:
        """Fail if the board saw anything that broke its protocol."""
        assert not self.errors, f"fake board on {self.port} saw protocol errors: {self.errors}"

    def unplug(self) -> None:
        """Pull the USB plug: the board stops and the pty's master side closes, so the
        code under test gets EIO on its next read or write."""
        self._stop()
        self._pty.unplug()

    def close(self) -> None:
        self.unplug()
        self._pty.close()
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass

    def send(self, data: bytes) -> None:
        """Write raw bytes to the code under test (from any thread)."""
        os.write(self._master, data)

    def _stop(self) -> None:
        if self._thread.is_alive():
            os.write(self._wake_write, b"x")
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in ready:
                return
            try:
                data = os.read(self._master, 256)
            except OSError:
                return
            with self._cond:
                self._receive(data)
                self._cond.notify_all()

    @abstractmethod
    def _receive(self, data: bytes) -> None:
        """Take bytes the driver wrote; each board speaks its own protocol."""


class FakeLcusBoard(PtyBoard):
    """A CH340 LCUS relay board with ``channels`` relays. Keeps every valid frame in
    :attr:`frames` and each channel's state in :attr:`relays` (1-based); never answers,
    like the real board."""

    def __init__(self, channels: int = 4) -> None:
        self.channels = channels
        self.relays: dict[int, bool] = {channel: False for channel in range(1, channels + 1)}
        self.frames: list[bytes] = []
        self._buffer = bytearray()
        super().__init__()

    def _receive(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            if self._buffer[0] != 0xA0:
                self.errors.append(f"byte {self._buffer[0]:02x} where a frame should start (A0)")
                del self._buffer[0]
                continue
            frame = bytes(self._buffer[:4])
            del self._buffer[:4]
            header, channel, state, checksum = frame
            if checksum != (header + channel + state) & 0xFF:
                self.errors.append(f"bad checksum in {frame.hex(' ')}")
            elif not 1 <= channel <= self.channels:
                self.errors.append(f"no channel {channel} on a {self.channels}-channel board: {frame.hex(' ')}")
            elif state not in (0, 1):
                self.errors.append(f"bad state {state:02x} in {frame.hex(' ')}")
            else:
                self.frames.append(frame)
                self.relays[channel] = state == 1


class FakeModbusBoard(PtyBoard):
    """A Modbus RTU relay module at address ``slave`` with ``coils`` relays and ``inputs``
    discrete inputs. Understands functions 05 and 02; answers others with exception 01,
    a bad address with 02, a bad value with 03; stays silent on a bad CRC (recording an
    error) and on frames for other slaves, as a real slave does."""

    def __init__(self, slave: int = 1, coils: int = 8, inputs: int = 8) -> None:
        self.slave = slave
        self.coils = [False] * coils
        self.inputs = [False] * inputs
        self.requests: list[bytes] = []
        self._scripted: dict[int, deque[bool]] = {}
        self._exceptions: deque[int] = deque()
        self._corrupt = 0
        self._substitutes: deque[bytes] = deque()
        self._buffer = bytearray()
        super().__init__()

    def queue_passage(self, address: int, count: int = 1) -> None:
        """Make the next reads of input ``address`` see ``count`` activations (active, inactive)."""
        with self._cond:
            self._scripted.setdefault(address, deque()).extend([True, False] * count)

    def answer_exception(self, code: int, count: int = 1) -> None:
        """Answer the next ``count`` valid requests with exception ``code``."""
        with self._cond:
            self._exceptions.extend([code] * count)

    def corrupt_answers(self, count: int = 1) -> None:
        """Send the next ``count`` answers with a wrong CRC."""
        with self._cond:
            self._corrupt += count

    def substitute_answer(self, body: bytes) -> None:
        """Answer the next valid request with ``body`` (and a correct CRC) instead, as a
        confused or differently configured module would."""
        with self._cond:
            self._substitutes.append(body)

    def _receive(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 8:  # every request this board knows is 8 bytes long
            frame = bytes(self._buffer[:8])
            del self._buffer[:8]
            if crc16_modbus_bitwise(frame[:6]).to_bytes(2, "little") != frame[6:]:
                self.errors.append(f"bad CRC in request {frame.hex(' ')}")
                self._buffer.clear()  # resynchronise on the next frame, as after a silent gap
                continue
            if frame[0] != self.slave:
                continue
            self.requests.append(frame)
            self._reply(self._substitutes.popleft() if self._substitutes else self._answer(frame))

    def _answer(self, frame: bytes) -> bytes:
        function = frame[1]
        first = int.from_bytes(frame[2:4], "big")
        value = int.from_bytes(frame[4:6], "big")
        if self._exceptions:
            return self._exception(function, self._exceptions.popleft())
        if function == 0x05:
            if first >= len(self.coils):
                return self._exception(function, 2)
            if value not in (0xFF00, 0x0000):
                return self._exception(function, 3)
            self.coils[first] = value == 0xFF00
            return frame[:6]
        if function == 0x02:
            if not 1 <= value <= 2000:
                return self._exception(function, 3)
            if first + value > len(self.inputs):
                return self._exception(function, 2)
            levels = [self._input_level(address) for address in range(first, first + value)]
            data = bytearray((value + 7) // 8)
            for index, level in enumerate(levels):
                data[index // 8] |= int(level) << (index % 8)
            return bytes((self.slave, function, len(data))) + bytes(data)
        return self._exception(function, 1)

    def _input_level(self, address: int) -> bool:
        script = self._scripted.get(address)
        return script.popleft() if script else self.inputs[address]

    def _exception(self, function: int, code: int) -> bytes:
        return bytes((self.slave, function | 0x80, code))

    def _reply(self, body: bytes) -> None:
        crc = crc16_modbus_bitwise(body)
        if self._corrupt:
            self._corrupt -= 1
            crc ^= 0xFFFF
        self.send(body + crc.to_bytes(2, "little"))
