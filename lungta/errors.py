"""Errors the command line turns into one line on stderr and exit status 2.

Each part raises its own specific exception (a config, a key file, a gate's
state, a scanner, a turnstile); ``user_error_types`` lists those that a
user causes or must fix. The list is built from the modules already loaded,
so the CLI never imports a heavy part (OpenCV, paho) just to name its error:
a module that was never imported cannot have raised.
"""

from __future__ import annotations

import sys


class LungtaError(Exception):
    """Base of the command line's own one-line errors: the message says what and where."""


class CommandError(LungtaError):
    """A user-facing failure: the message says what and where, nothing more is printed."""


# (module, class name) of every part's user-facing error.
_USER_ERRORS = (
    ("protocol.errors", "KeyFileError"),
    ("gate.cache.schema", "StateError"),
    ("gate.cache.revocation_files", "RevocationStoreError"),
    ("gate.scanner.errors", "ScannerError"),
    ("gate.turnstile.errors", "TurnstileError"),
    ("hub.quota", "QuotaError"),
    ("hub.sqlite_tables", "HubStoreError"),
)


def user_error_types() -> tuple[type[BaseException], ...]:
    """LungtaError and every loaded part's user-facing error class."""
    found: list[type[BaseException]] = [LungtaError]
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None) if module is not None else None
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)
