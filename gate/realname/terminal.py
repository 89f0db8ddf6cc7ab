"""The ID check of ``lungta gate validate``: the operator of a handheld types the holder's ID
on the terminal, without echo, when a real-name ticket asks for it.

The gate daemon waits for an ID from its readers (check.py); a handheld run from a shell
has no reader thread, only the person holding it. The number is read from the terminal
device itself (``/dev/tty`` by default), not from the command line or stdin, so it never
reaches shell history, ``ps`` or the stream of ticket texts, and it is not echoed. Like the
daemon's check it lives in memory only, from the keyboard to the binding; the outcome is
the only thing recorded.
"""

from __future__ import annotations

import logging
import os
import termios
from collections.abc import Callable

from gate.validator import ScanResult, Validator
from protocol.claims import TicketClaims
from protocol.holder import MAX_ID_LENGTH, HolderIdError

from .check import with_detail
from .policy import present_holder, unknown_binding_version

log = logging.getLogger(__name__)

ATTEMPTS = 3  # a mistyped number is asked again this many times in all, then the ticket stays unused
LINE_LIMIT = 4 * MAX_ID_LENGTH  # bytes kept of one typed line: room for spaces and dashes


class TerminalUnavailable(Exception):
    """The terminal to type IDs on cannot be opened; names it."""


class TerminalIdPrompt:
    """Asks for one ID at a time on a terminal device, echo off, and reads one line."""

    def __init__(self, path: str) -> None:
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        except OSError as error:
            raise TerminalUnavailable(f"--id-terminal {path}: cannot open it to ask for IDs: {error.strerror}") from None
        if not os.isatty(self._fd):
            os.close(self._fd)
            raise TerminalUnavailable(f"--id-terminal {path}: not a terminal")
        self.path = path

    def close(self) -> None:
        os.close(self._fd)

    def ask(self, prompt: str) -> str:
        """``prompt``, then the line typed (without its end), echo off while it is typed.

        Echo goes off before the prompt is shown and input is not flushed (TCSANOW): an
        operator who types as soon as the prompt appears loses nothing."""
        saved = termios.tcgetattr(self._fd)
        quiet = list(saved)
        quiet[3] &= ~(termios.ECHO | termios.ECHONL)
        termios.tcsetattr(self._fd, termios.TCSANOW, quiet)
        try:
            os.write(self._fd, prompt.encode("utf-8"))
            line = self._read_line()
        finally:
            termios.tcsetattr(self._fd, termios.TCSANOW, saved)
            os.write(self._fd, b"\r\n")
        return line

    def say(self, text: str) -> None:
        os.write(self._fd, (text + "\r\n").encode("utf-8"))

    def _read_line(self) -> str:
        typed = bytearray()
        while True:
            byte = os.read(self._fd, 1)
            if not byte or byte in b"\r\n":  # end of file (terminal gone) counts as an empty answer
                return typed.decode("utf-8", "replace")
            if len(typed) < LINE_LIMIT:
                typed += byte


def complete_with_typed_id(validator: Validator, text: str, first: ScanResult, ask: Callable[[str], str],
                           say: Callable[[str], None], site_secret: bytes, retired_secrets: tuple[bytes, ...] = ()) -> ScanResult:
    """Ask for the holder's ID of the ticket ``first`` refused as holder_check_required and
    decide ``text`` again with it. An empty answer, or ATTEMPTS mistyped ones, leave the
    refusal standing (the ticket stays unused)."""
    claims = first.decision.ticket
    assert claims is not None, "holder_check_required is decided on a verified ticket"
    unknown = unknown_binding_version(claims)
    if unknown is not None:
        log.warning("id check ticket=%s: %s; update this software, check the ID by hand", claims.ticket_id_hex, unknown)
        say(f"ID check impossible here: {unknown}. Check the ID by hand.")
        return with_detail(first, f"{unknown}: check the ID by hand")
    for _ in range(ATTEMPTS):
        typed = ask(_prompt(claims))
        if not typed.strip():
            log.info("id check ticket=%s: no ID typed", claims.ticket_id_hex)
            return with_detail(first, "no ID typed; the ticket is not used")
        try:
            presented = present_holder(claims, typed, site_secret, retired_secrets)
        except HolderIdError as error:
            say(f"{error}; type it again (Enter alone: skip)")
            continue
        return validator.scan(text, holder=presented)
    return with_detail(first, f"no ID number after {ATTEMPTS} tries; the ticket is not used")


def _prompt(claims: TicketClaims) -> str:
    name = f" ({claims.holder_name})" if claims.holder_name else ""
    return f"ID check 验证身份证: ticket {claims.ticket_id_hex[:12]}{name}: type the holder's ID number (not shown), Enter: "

