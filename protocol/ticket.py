"""Ticket text <-> verified claims: the one entry point gates and tools use.

Text is ``LT1:`` + base45(COSE_Sign1(CWT claims)). Reading is split in two so
a gate can show what an unverifiable ticket claims (``read_ticket``) while
only ``verify_ticket`` yields something a decision may trust.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nacl.signing import SigningKey

from .base45 import b45decode, b45encode
from .cbor import decode_exactly, encode
from .claims import TicketClaims, claims_from_cbor, claims_to_cbor
from .cose import Sign1, decode_sign1, sign1
from .errors import Oversized, WrongPrefix
from .keys import kid_for
from .trust import TrustedKey, TrustStore

PREFIX = "LT1:"
MAX_TEXT_LENGTH = 1024
TICKET_ID_LENGTH = 12


@dataclass(frozen=True)
class ReadTicket:
    """A ticket parsed but not verified: its claims are only claims."""

    sign1: Sign1
    claims: TicketClaims

    @property
    def kid(self) -> bytes:
        return self.sign1.kid


@dataclass(frozen=True)
class VerifiedTicket:
    """A ticket whose signature verified with a trusted key valid at the checked time."""

    claims: TicketClaims
    key: TrustedKey


def new_ticket_id() -> bytes:
    return os.urandom(TICKET_ID_LENGTH)


def issue_ticket(claims: TicketClaims, key: SigningKey) -> str:
    """Sign the claims with ``key`` and return the QR text."""
    payload = encode(claims_to_cbor(claims))
    return PREFIX + b45encode(sign1(payload, kid_for(key.verify_key), key))


def read_ticket(text: str) -> ReadTicket:
    """Parse without verifying; every defect raises a specific TicketError."""
    if len(text) > MAX_TEXT_LENGTH:
        raise Oversized(f"ticket text is {len(text)} characters, at most {MAX_TEXT_LENGTH} allowed")
    if not text.startswith(PREFIX):
        raise WrongPrefix(f"text does not start with {PREFIX!r}: {text[:8]!r}")
    message = decode_sign1(b45decode(text[len(PREFIX):]))
    return ReadTicket(message, claims_from_cbor(decode_exactly(message.payload, "CWT claims")))


def verify_ticket(text: str, trust: TrustStore, now: int) -> VerifiedTicket:
    """Parse, find the key by kid, check its window at ``now`` and verify the signature."""
    ticket = read_ticket(text)
    key = trust.key_for(ticket.kid, now)
    ticket.sign1.verify(key.verify_key)
    return VerifiedTicket(ticket.claims, key)
