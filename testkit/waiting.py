"""Waiting on a condition another process makes true (a log line, a database row), with a deadline that names it.

For conditions no thread of the test can be notified of: the predicate is
polled, and a timeout fails with ``what`` was missing, never a bare False.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

POLL_SECONDS = 0.05  # polling interval of condition waits, not a synchronisation
WAIT = 45.0  # generous: these conditions come from real processes on a shared machine
T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition a test or the fault harness waited for did not come true in time; says what it was."""


def wait_until(predicate: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Poll ``predicate`` until it returns something true; that value, or WaitTimeout naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
