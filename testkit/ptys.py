"""The one pseudo-terminal fake: a pty pair in raw mode standing where a serial cable would.

The code under test opens :attr:`RawPty.port` (a real tty path) with the production serial
code, exactly as it opens a scanner module's or a relay board's UART; the test, or a fake
device thread (``testkit.fake_boards``, ``testkit.fake_sam_reader``), holds the master side.
The slave stays open here, so its line discipline stays raw while the code under test
closes and reopens the port (a gate restart, a reader's reopen backoff).
"""

from __future__ import annotations

import os
import pty
import tty
from typing import Self

SCANNER_TERMINATOR = b"\r"  # what a serial QR scanner module sends after each code (its factory setting)


class RawPty:
    """A raw pty pair: ``master`` for the test's side, ``port`` the path the code under test opens."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._master_open = True
        self._slave_open = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        """Bytes from the device's side of the cable."""
        os.write(self.master, data)

    def scan(self, text: str) -> None:
        """What a serial scanner module sends when it reads ``text``: the text and its terminator."""
        self.write(text.encode() + SCANNER_TERMINATOR)

    def unplug(self) -> None:
        """Pull the cable: the master side closes, so the code under test gets EIO on its next
        read or write. Idempotent."""
        if self._master_open:
            self._master_open = False
            os.close(self.master)

    def close(self) -> None:
        """Close both sides. Idempotent."""
        self.unplug()
        if self._slave_open:
            self._slave_open = False
            os.close(self.slave)
