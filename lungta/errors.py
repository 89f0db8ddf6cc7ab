"""Errors the command line turns into one line on stderr and a non-zero exit."""


class CommandError(Exception):
    """A user-facing failure: the message says what and where, nothing more is printed."""
