"""Log lines journald files at their level: a ``<N>`` syslog priority prefix when stderr is the journal.

Under systemd, stderr goes to journald, which files every line at the
unit's ``SyslogLevel`` (info) unless the line starts with ``<N>``
(``SyslogLevelPrefix=yes``, the default). Without the prefix
``journalctl -u lungta-hub -p warning`` would show nothing, not the gates
that dropped (docs/console.md). systemd sets ``JOURNAL_STREAM`` to the
device and inode of the stream it connected; the prefix is added only when
stderr is that stream, so a terminal or a pipe gets plain lines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TextIO

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald stamps the time itself


def syslog_priority(levelno: int) -> int:
    """syslog(3) priority of a ``logging`` level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Every physical line prefixed: journald reads a traceback line by line, each at the record's level."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def is_journal(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``stream`` is the one systemd connected to journald (``JOURNAL_STREAM=device:inode``)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        found = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # a stream without a descriptor (pytest's capture) is no journal
        return False
    return (found.st_dev, found.st_ino) == (int(device), int(inode))


def configure_logging(level: str | int, stream: TextIO, environ: Mapping[str, str] = os.environ) -> None:
    """The CLI's logging: plain timestamped lines, or journald's priority-prefixed lines under systemd."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if is_journal(stream, environ) else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
