"""Reading a configured file safely: regular files only, bounded in size.

Every file a config names (trust.toml, a key, a password file, gate.toml
itself) is read through here, so ``trust = "/dev/zero"`` or a FIFO is
refused at once instead of hanging, a huge file is refused instead of
filling memory, and a hostile TOML (nested a thousand levels deep, not
UTF-8) is one line rather than a traceback.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

MAX_CONFIG_BYTES = 1024 * 1024


class UnreadableFile(Exception):
    """The file cannot be used; the message names it and says why, in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_regular_file(path: Path, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Opened non-blocking, so a FIFO with no writer does not block the open,
    and checked with fstat on the open descriptor, so what is checked is
    what is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(path, f"cannot read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode  # before fdopen, which itself raises on a directory
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnreadableFile(path, "is a directory, not a file" if stat.S_ISDIR(mode) else "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(path, f"cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise UnreadableFile(path, f"larger than {limit} bytes")
    return data


def read_text_file(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """A bounded regular file as UTF-8 text."""
    try:
        return read_regular_file(path, limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(path, f"not UTF-8 text (byte {exc.start})") from None


def read_toml_file(path: Path, limit: int = MAX_CONFIG_BYTES) -> dict:
    """A bounded regular file parsed as TOML; nesting too deep is refused like any syntax error."""
    text = read_text_file(path, limit)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UnreadableFile(path, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise UnreadableFile(path, "not valid TOML: nested too deeply") from None
