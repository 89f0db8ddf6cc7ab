"""Hostile ticket bytes for the regression tests and the fuzz seed corpora.

Kept beside the harnesses (not in tests/) because both the tests and
``python -m fuzz.<harness>`` use them; no runtime module imports ``fuzz``.
"""

from __future__ import annotations

import cbor2
from nacl.signing import SigningKey

from protocol.base45 import b45encode
from protocol.cbor import encode
from protocol.cose import Sign1
from protocol.keys import kid_for
from protocol.ticket import PREFIX

# The two unsigned codes of issue 10: tag 37 (UUID) around text, tag 35 (regex).
ISSUE_10_CODES = ("LT1:SERR8EAB8AB8AB8AB8AB8AB8AB8K1", "LT1:QERORQJ1")


def raw_map(*pairs: tuple[bytes, bytes]) -> bytes:
    """A CBOR map written pair by pair from encoded keys and values, so it can hold what no encoder writes."""
    return bytes([0xA0 + len(pairs)]) + b"".join(key + value for key, value in pairs)


def claims_with(now: int, lungta: bytes, *extra: tuple[bytes, bytes]) -> bytes:
    """CWT claims bytes valid at ``now`` around raw Lungta-map bytes, plus raw extra pairs."""
    base = [(encode(4), encode(now + 3600)), (encode(5), encode(now - 60)), (encode(7), encode(b"t" * 12))]
    return raw_map(*base, *extra, (encode(-65537), lungta))


def signed_text(key: SigningKey, payload: bytes, protected: dict | None = None, unprotected: dict | None = None) -> str:
    """Ticket text of a COSE_Sign1 really signed by ``key``, with headers of the caller's choosing."""
    header = encode(protected if protected is not None else {1: -8, 4: kid_for(key.verify_key)})
    signature = key.sign(Sign1(header, b"", payload, b"").to_be_signed()).signature
    return PREFIX + b45encode(encode(cbor2.CBORTag(18, [header, unprotected or {}, payload, signature])))


def hostile_tickets(key: SigningKey, now: int) -> list[str]:
    """Ticket texts a gate must refuse as malformed: issue 10's codes and signed ones with bad structure."""
    site = (encode(1), encode("potala"))
    kid = kid_for(key.verify_key)
    return [
        *ISSUE_10_CODES,
        PREFIX + b45encode(bytes.fromhex("d81c81d81d00")),  # shared value referring to itself (tags 28/29)
        PREFIX + b45encode(b"\x81" * 500 + b"\x00"),  # nesting far past the limit
        PREFIX + b45encode(bytes.fromhex("9bffffffffffffffff")),  # an array of 2^64-1 items
        signed_text(key, claims_with(now, raw_map(site), (encode(4), encode(now + 9 * 3600)))),  # exp twice
        signed_text(key, claims_with(now, raw_map(site, (b"\xf5", encode(4))))),  # {true: 4} in the Lungta map
        signed_text(key, claims_with(now, raw_map(site)), {1: -8, 4: kid, 2: [99]}),  # crit naming an unknown header
    ]
