"""What every hub<->gate message shares: the error classes, the bounds, the strict field readers.

The messages themselves live in two modules, one per direction:
``protocol.hub_messages`` (the signed hub-to-gate envelope and its bodies) and
``protocol.gate_messages`` (the unsigned gate-to-hub reports the hub checks).

Decoding never trusts its input: every defect raises a ``MessageError``
subclass with a stable ``reason`` code, never a bare library exception, and
every number, string, list and map read from the wire has a bound. The wire
format is specified in docs/hub-protocol.md.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from .cbor import decode_exactly
from .errors import TicketError

PROTOCOL_VERSION = 2
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_SEQ = 2**63 - 1
MAX_TIME_MS = 2**53
MAX_COUNT = 2**31
MAX_TEXT = 64
MAX_DETAIL = 512
EVENT_ID_LENGTH = 16
INCARNATION_LENGTH = 16
NONCE_LENGTH = 16
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class MessageError(Exception):
    """A hub or gate message that must not be acted on; ``reason`` is a stable code."""

    reason = "malformed"


class MalformedMessage(MessageError):
    """Not CBOR / COSE of the expected shape, or a field missing, mistyped or out of bounds."""


def decode_payload(payload: bytes, what: str, *, allow_floats: bool = False) -> object:
    """One CBOR item spanning ``payload``, at most MAX_MESSAGE_BYTES; raises MalformedMessage.

    Floats only where the message defines them (``allow_floats``: gate reports
    and event details, e.g. a heartbeat's temperature_c).

    Last guard: the decoder is meant to raise only TicketError (protocol.cbor),
    but whatever else a hostile payload makes it raise is turned into a
    MalformedMessage here, so the caller logs and counts it like any defect.
    """
    if type(payload) is not bytes or len(payload) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"{what} must be at most {MAX_MESSAGE_BYTES} bytes")
    try:
        return decode_exactly(payload, what, allow_floats=allow_floats)
    except TicketError as error:
        raise MalformedMessage(str(error)) from None
    except (RecursionError, ValueError, TypeError, LookupError, AssertionError, RuntimeError, OverflowError, MemoryError) as error:
        raise MalformedMessage(f"{what} is not valid CBOR: {type(error).__name__}") from None


def read_map(value: object, what: str, allowed: Collection[str]) -> dict:
    """``value`` if it is a map whose keys are all in ``allowed``."""
    if type(value) is not dict:
        raise MalformedMessage(f"{what} must be a map")
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise MalformedMessage(f"{what} has unknown field(s) {[str(key)[:20] for key in unknown[:5]]!r}")
    return value


def read_int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise MalformedMessage(f"{name} must be an integer in {low}..{high}, got {_short(value)}")
    return value


def read_opt_int(value: object, name: str, low: int, high: int) -> int | None:
    return None if value is None else read_int(value, name, low, high)


def read_bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise MalformedMessage(f"{name} must be true or false, got {_short(value)}")
    return value


def read_bytes(value: object, name: str, low: int, high: int) -> bytes:
    if type(value) is not bytes or not low <= len(value) <= high:
        raise MalformedMessage(f"{name} must be a byte string of {low}..{high} bytes")
    return value


def read_text(value: object, name: str, high: int = MAX_TEXT, low: int = 1) -> str:
    if type(value) is not str or not low <= len(value) <= high:
        raise MalformedMessage(f"{name} must be a text string of {low}..{high} characters")
    return value


def read_day(value: object, name: str) -> str:
    """A YYYY-MM-DD date (digits in place; the calendar is checked where it matters)."""
    if type(value) is not str or not _DAY.fullmatch(value):
        raise MalformedMessage(f"{name} must be YYYY-MM-DD")
    return value


def read_list(value: object, name: str, high: int) -> list:
    if type(value) is not list or len(value) > high:
        raise MalformedMessage(f"{name} must be an array of at most {high} items")
    return value


def _short(value: object) -> str:
    return repr(value)[:40] if isinstance(value, (int, float, bool, str, bytes, type(None))) else type(value).__name__
