"""COSE_Sign1 (RFC 9052 section 4.2) with EdDSA / Ed25519 only.

Only what a ticket needs is implemented, and implemented strictly: alg must
be in the protected header, external AAD is empty, and the tag 18 (and an
outer CWT tag 61) is accepted but not required. The kid is written in the
protected header and read from there, or from the unprotected header as
python-cwt and the EU DCC allow: it only selects the key, so a swapped kid
can do no more than make the signature fail. A label may not sit in both
headers, and a ``crit`` header (2) is refused unless every label it lists
is one this reader acts on (alg, kid). The CBOR itself is read by
``protocol.cbor``'s strict decoder: the tags 61 and 18 around the top-level
array and no others.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .cbor import Tagged, decode_exactly, encode
from .errors import BadSignature, BadStructure, UnsupportedAlgorithm

COSE_SIGN1_TAG = 18
CWT_TAG = 61
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_KID = 4
ALG_EDDSA = -8
UNDERSTOOD_HEADERS = frozenset({HEADER_ALG, HEADER_KID})
SIGNATURE_LENGTH = 64


@dataclass(frozen=True)
class Sign1:
    """A decoded but not yet verified COSE_Sign1."""

    protected: bytes
    kid: bytes
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        return _sig_structure(self.protected, self.payload)

    def verify(self, key: VerifyKey) -> None:
        """Raise BadSignature unless ``signature`` is the key's signature over the Sig_structure."""
        try:
            key.verify(self.to_be_signed(), self.signature)
        except BadSignatureError:
            raise BadSignature(f"signature does not verify with kid {self.kid.hex()}") from None


_SIG_STRUCTURE_HEAD = encode("Signature1")  # the array header goes in front: 0x84


def _bstr_head(length: int) -> bytes:
    """CBOR major type 2 header (RFC 8949 section 3.1) for a byte string of ``length``."""
    if length < 24:
        return bytes([0x40 | length])
    if length < 0x100:
        return bytes([0x58, length])
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    return b"\x5a" + length.to_bytes(4, "big")


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The CBOR of ["Signature1", protected, h'', payload], the bytes the signature covers.

    Assembled directly rather than through cbor2 because it is on every
    decision's path and costs a tenth of the generic encoder; a test checks
    it against cbor2 byte for byte.
    """
    return b"\x84" + _SIG_STRUCTURE_HEAD + _bstr_head(len(protected)) + protected + b"\x40" + _bstr_head(len(payload)) + payload


def sign1(payload: bytes, kid: bytes, key: SigningKey) -> bytes:
    """A tagged COSE_Sign1 with alg EdDSA and the kid in the protected header."""
    protected = encode({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid})
    signature = key.sign(_sig_structure(protected, payload)).signature
    return encode(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def decode_sign1(data: bytes) -> Sign1:
    """Split a COSE_Sign1 into its parts, refusing any other shape."""
    item = decode_exactly(data, "COSE_Sign1", outer_tags=(CWT_TAG, COSE_SIGN1_TAG))
    if isinstance(item, Tagged) and item.tag == CWT_TAG:
        item = item.value
    if isinstance(item, Tagged):
        if item.tag != COSE_SIGN1_TAG:
            raise BadStructure(f"CBOR tag {item.tag} is not COSE_Sign1 (18)")
        item = item.value
    if type(item) is not list or len(item) != 4:
        raise BadStructure("COSE_Sign1 must be an array of 4 items")
    protected, unprotected, payload, signature = item
    if type(protected) is not bytes or type(payload) is not bytes or type(signature) is not bytes:
        raise BadStructure("COSE_Sign1 protected header, payload and signature must be byte strings")
    if type(unprotected) is not dict:
        raise BadStructure("COSE_Sign1 unprotected header must be a map")
    if len(signature) != SIGNATURE_LENGTH:
        raise BadStructure(f"signature is {len(signature)} bytes, Ed25519 needs {SIGNATURE_LENGTH}")
    header = _protected_header(protected)
    if unprotected:
        _check_unprotected(header, unprotected)
    kid = header.get(HEADER_KID, unprotected.get(HEADER_KID))
    if type(kid) is not bytes or not 1 <= len(kid) <= 32:
        raise BadStructure("protected header needs a kid byte string of 1..32 bytes")
    return Sign1(protected, kid, payload, signature)


@functools.lru_cache(maxsize=64)
def _protected_header(protected: bytes) -> Mapping[object, object]:
    """The checked protected header, read-only; cached because every ticket of one key carries the same bytes.

    Only headers that pass the checks are cached (an exception is not), so
    hostile input can at most cycle the 64 entries, never grow them.
    """
    header = decode_exactly(protected, "protected header")
    if type(header) is not dict:
        raise BadStructure("protected header must be a map")
    alg = header.get(HEADER_ALG)
    if alg != ALG_EDDSA or type(alg) is not int:
        raise UnsupportedAlgorithm(f"algorithm {alg!r:.40} is not EdDSA (-8)")
    if HEADER_CRIT in header:
        _check_crit(header[HEADER_CRIT])
    return MappingProxyType(header)


def _check_unprotected(protected: Mapping[object, object], unprotected: dict) -> None:
    """RFC 9052 section 3: a label sits in one bucket only, and crit only in the protected one."""
    both = protected.keys() & unprotected.keys()
    if both:
        raise BadStructure(f"header label(s) {sorted(both, key=repr)[:5]!r:.80} in both the protected and unprotected header")
    if HEADER_CRIT in unprotected:
        raise BadStructure("crit (header 2) must be in the protected header")


def _check_crit(crit: object) -> None:
    """RFC 9052 section 3.1: ``crit`` lists the headers the signer requires the reader to act on.

    This reader acts on alg and kid only, so any other listed label refuses
    the message rather than silently ignoring a restriction it cannot apply.
    """
    if type(crit) is not list or not crit:
        raise BadStructure("crit (header 2) must be a non-empty array of header labels")
    unknown = [label for label in crit if type(label) is not int or label not in UNDERSTOOD_HEADERS]
    if unknown:
        raise BadStructure(f"crit names header(s) {unknown[:5]!r:.80} this reader does not understand")
