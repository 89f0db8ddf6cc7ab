"""The one place untrusted CBOR is decoded.

cbor2 raises a handful of exception types on hostile input (its own errors,
plus ValueError, OverflowError, RecursionError from deep nesting and
MemoryError from absurd declared lengths); they all become one BadStructure
here, and trailing bytes after the item are refused rather than ignored.
"""

from __future__ import annotations

import io

import cbor2

from .errors import BadStructure

_HOSTILE_INPUT = (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, MemoryError, EOFError, LookupError)


def decode_exactly(data: bytes, what: str) -> object:
    """Decode one CBOR item that must span ``data`` exactly."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except _HOSTILE_INPUT as exc:
        raise BadStructure(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise BadStructure(f"{what} has {len(data) - stream.tell()} trailing byte(s)")
    return item


def encode(item: object) -> bytes:
    return cbor2.dumps(item)
