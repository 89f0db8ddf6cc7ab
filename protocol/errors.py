"""Why a ticket text was not accepted.

Every failure of parsing or verification is one of these classes, never a bare
exception from a library, so the gate can turn it into a decision with a
reason the visitor's message catalogue knows. ``reason`` is the stable code a
decision carries; ``str(error)`` is the human detail for logs and staff.
"""

from __future__ import annotations


class TicketError(Exception):
    """A ticket text could not be read or trusted."""

    reason = "malformed"


class WrongPrefix(TicketError):
    """The text is not a Lungta ticket of a version this reader knows."""


class Oversized(TicketError):
    """The text or one of its parts is larger than any genuine ticket."""


class BadEncoding(TicketError):
    """The text after the prefix is not valid base45."""


class BadStructure(TicketError):
    """The bytes are not a well-formed COSE_Sign1 / CWT of the expected shape."""


class BadClaims(TicketError):
    """The claims set is well-formed CBOR but a claim is missing or mistyped."""


class UnsupportedAlgorithm(TicketError):
    """The protected header names an algorithm other than EdDSA."""


class UnknownKey(TicketError):
    """No key with this kid is in the trust store."""

    reason = "unknown_key"


class KeyNotValid(TicketError):
    """The key is known but outside its validity window at the checked time."""

    reason = "key_not_valid"


class BadSignature(TicketError):
    """The signature does not verify with the key the kid names."""

    reason = "bad_signature"


class KeyFileError(Exception):
    """A key or trust-store file cannot be used; the message names the file."""
