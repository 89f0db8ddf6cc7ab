"""Keep ID numbers out of the journal when an ID reader is a keyboard wedge or a line reader.

The scanner layer logs the first characters of a fragment it drops (useful for a QR
scanner set up with the wrong suffix); from an ID reader that would be part of an ID
number. This filter blanks the text of those warnings for the ID readers' sources only,
so QR scanners keep their diagnostics. Every such warning passes its text last.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

LOGGERS = ("gate.scanner.keymap", "gate.scanner.text_lines")
REDACTED = "<ID redacted>"


class RedactIdReaders(logging.Filter):
    """Replace the last argument of records about the given sources with REDACTED."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and args[0] in self.sources:
            record.args = args[:-1] + (REDACTED,) if len(args) > 1 else args
        return True


_FILTER = RedactIdReaders()


def redact_id_reader_logs(sources: Iterable[str]) -> None:
    """Install the filter (once) and add ``sources`` to the readers it redacts."""
    _FILTER.sources.update(sources)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
