"""Bytes from a serial scanner to clean lines: pure, so every failure mode is unit-tested.

What a serial line delivers in the field: power-up garbage, a code cut off
when the cable was pulled, a scanner misconfigured to send CRLF where CR was
expected, a stuck module streaming without terminator. The rule is simple:
a line is passed on only if it arrived whole, printable and short enough;
anything else is dropped with one log line and never reaches the engine as
a misleading ticket text.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STRAY_LINE_ENDS = b"\r\n"
LOGGED_PREFIX = 16  # ticket texts are bearer credentials: log only their start


@dataclass
class AssembledLines:
    texts: list[str] = field(default_factory=list)
    rejected: int = 0  # lines or fragments dropped by this feed


class LineAssembler:
    """Single-threaded; the caller passes the arrival time of every chunk.

    Memory stays below ``max_line`` plus one chunk: an over-long line is
    dropped as soon as it passes the limit, and the rest of it, up to the
    next terminator, is skipped.
    """

    def __init__(self, terminator: bytes, max_line: int, partial_timeout: float, name: str) -> None:
        self._terminator = terminator
        self._max_line = max_line
        self._partial_timeout = partial_timeout
        self._name = name
        self._buffer = bytearray()
        self._skipping = False  # inside the tail of an over-long line
        self._last_byte_at: float | None = None

    @property
    def pending(self) -> int:
        """Bytes held waiting for a terminator."""
        return len(self._buffer)

    def feed(self, data: bytes, now: float) -> AssembledLines:
        result = AssembledLines()
        if not data:
            return result
        if self._last_byte_at is not None and now - self._last_byte_at > self._partial_timeout:
            self._drop_stale_fragment(result)
        self._last_byte_at = now
        self._buffer += data
        while True:
            end = self._buffer.find(self._terminator)
            if end < 0:
                self._limit_unterminated(result)
                return result
            line = bytes(self._buffer[:end])
            del self._buffer[: end + len(self._terminator)]
            if self._skipping:
                self._skipping = False  # the over-long line's tail ends here; it was counted once already
                continue
            self._accept(line, result)

    def _drop_stale_fragment(self, result: AssembledLines) -> None:
        if self._buffer.strip(STRAY_LINE_ENDS) and not self._skipping:
            log.warning("%s: dropped %d bytes left without terminator: %r", self._name, len(self._buffer), bytes(self._buffer[:LOGGED_PREFIX]))
            result.rejected += 1
        self._buffer.clear()
        self._skipping = False

    def _limit_unterminated(self, result: AssembledLines) -> None:
        # Keep a possible first half of a split terminator (the CR of CRLF).
        keep = len(self._terminator) - 1
        if len(self._buffer) <= self._max_line + keep:
            return
        if not self._skipping:
            log.warning("%s: dropped a line longer than %d bytes: %r...", self._name, self._max_line, bytes(self._buffer[:LOGGED_PREFIX]))
            result.rejected += 1
            self._skipping = True
        del self._buffer[: len(self._buffer) - keep]

    def _accept(self, line: bytes, result: AssembledLines) -> None:
        line = line.strip(STRAY_LINE_ENDS)  # CRLF read as CR leaves an LF at the next line's start
        if not line:
            return
        if len(line) > self._max_line:
            log.warning("%s: dropped a line of %d bytes, more than %d: %r...", self._name, len(line), self._max_line, line[:LOGGED_PREFIX])
            result.rejected += 1
            return
        text = printable_text(line)
        if text is None:
            log.warning("%s: dropped a line with non-printable bytes (noise on the line?): %r", self._name, line[:LOGGED_PREFIX])
            result.rejected += 1
            return
        result.texts.append(text)


def printable_text(line: bytes) -> str | None:
    """The line as text if it is valid UTF-8 without control characters, else None."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(char) == "Cc" for char in text):
        return None
    return text
