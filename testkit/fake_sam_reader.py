"""A resident-ID reader on the far side of a pty: answers find / select / read in the SAM
framing with a card's GA/T 490 text file and a photo block of random bytes. Test support:
no runtime module imports it."""

from __future__ import annotations

import os
import select
import threading

from gate.idcard.sam import PREAMBLE, Command, Status, checksum, reply_frame
from testkit.ptys import RawPty

FIELDS = (("name", 30), ("sex", 2), ("nation", 4), ("birth", 16), ("address", 70), ("number", 36), ("issuer", 30),
          ("valid_from", 16), ("valid_to", 16), ("reserved", 28), ("card_type", 2), ("tail", 6))


def card_text(number: str, name: str = "扎西次仁", card_type: str = " ") -> bytes:
    """The 256-byte machine-readable text file of a card (UCS-2LE, space padded)."""
    values = {"name": name, "sex": "1", "nation": "01", "birth": "19900101", "address": "西藏自治区拉萨市城关区",
              "number": number, "issuer": "拉萨市公安局", "valid_from": "20200101", "valid_to": "20400101", "card_type": card_type}
    text = b"".join(values.get(field, "").ljust(size // 2).encode("utf-16-le")[:size] for field, size in FIELDS)
    assert len(text) == 256
    return text


class FakeSamReader:
    """Serve SAM frames on a pty until closed; ``place`` / ``remove`` a card; ``garble_next_read`` spoils the next card read."""

    def __init__(self) -> None:
        self._pty = RawPty()
        self.master = self._pty.master
        self.device = self._pty.port
        self.card: bytes | None = None
        self.reads = 0
        self.photos: list[bytes] = []  # every photo block sent, so a test can search for it afterwards
        self.changed = threading.Condition()
        self.garble_next_read = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-sam", daemon=True)
        self._thread.start()

    def place(self, number: str, **fields: str) -> None:
        self.card = card_text(number, **fields)

    def wait_reads(self, count: int, timeout: float) -> bool:
        """True once the card has been read ``count`` times in all."""
        with self.changed:
            return self.changed.wait_for(lambda: self.reads >= count, timeout)

    def remove(self) -> None:
        self.card = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pty.close()

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self.master, 4096)
            except OSError:
                return
            while (start := buffer.find(PREAMBLE)) >= 0 and len(buffer) >= start + 7:
                length = int.from_bytes(buffer[start + 5:start + 7], "big")
                end = start + 7 + length
                if len(buffer) < end:
                    break
                frame, buffer = buffer[start:end], buffer[end:]
                assert checksum(frame[5:-1]) == frame[-1], "the reader driver sent a bad checksum"
                os.write(self.master, self._answer(bytes(frame[7:9])))

    def _answer(self, command: bytes) -> bytes:
        card = self.card
        if command == Command.STATUS.value:
            reply = reply_frame(Status.OK)
        elif command == Command.FIND.value:
            reply = reply_frame(Status.FOUND, bytes(4)) if card else reply_frame(Status.NO_CARD)
        elif command == Command.SELECT.value:
            reply = reply_frame(Status.OK, bytes(8)) if card else reply_frame(Status.SELECT_FAILED)
        elif command == Command.READ_BASE.value and card:
            with self.changed:
                self.reads += 1
                self.changed.notify_all()
            photo = os.urandom(1024)
            self.photos.append(photo)
            reply = reply_frame(Status.OK, (256).to_bytes(2, "big") + (1024).to_bytes(2, "big") + card + photo)
        else:
            reply = reply_frame(0x21)
        if self.garble_next_read and command == Command.READ_BASE.value:
            self.garble_next_read = False
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        return reply
