"""The one place untrusted CBOR is decoded: a small strict decoder of our own.

A general CBOR library gives tags meaning (cbor2 builds UUIDs, regexes,
shared and self-referencing values, big numbers ...), and each of those is
code an attacker can reach with one QR code: cbor2 raised AssertionError on a
UUID tag around a text string and RuntimeError on a regex tag. So untrusted
bytes never meet such a decoder. This one accepts only the data model our
specs use (docs/protocol.md, "Accepted encoding"):

- unsigned and negative integers, byte strings, UTF-8 text strings, arrays,
  maps, false, true, null; floats (finite only) where the caller allows them;
- definite lengths only, every integer and length in its shortest head
  (RFC 8949 section 4.2.1 preferred serialization), so one value has one
  encoding;
- map keys that are integers or text strings, never twice in one map;
- no tags, except a chain of the caller's ``outer_tags`` around the top-level
  item (a ticket: 61 CWT and 18 COSE_Sign1), returned as ``Tagged``;
- at most ``max_depth`` nested arrays/maps, no trailing bytes.

It returns plain values (dict, list, int, bytes, str, bool, None, float) and
raises only BadStructure, for any bytes at all: a declared length is checked
against the bytes that remain before anything is allocated, and the nesting
limit keeps recursion far from Python's. cbor2 stays for encoding our own
values.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection
from dataclasses import dataclass

import cbor2

from .errors import BadStructure

MAX_DEPTH = 16
_FLOAT_FORMATS = {25: struct.Struct(">e"), 26: struct.Struct(">f"), 27: struct.Struct(">d")}
_SIMPLE = {20: False, 21: True, 22: None}
_SHORTEST = {25: 0x100, 26: 0x10000, 27: 0x100000000}  # smallest argument each head width may carry
_WIDTH = {25: 2, 26: 4, 27: 8}


@dataclass(frozen=True)
class Tagged:
    """A tag the caller allowed around the top-level item (``outer_tags``)."""

    tag: int
    value: object


class _Invalid(Exception):
    """Raised inside the decoder with the detail; decode_exactly adds what was being read."""


def decode_exactly(data: bytes, what: str, *, allow_floats: bool = False, outer_tags: Collection[int] = (), max_depth: int = MAX_DEPTH) -> object:
    """Decode one CBOR item that must span ``data`` exactly; any defect is BadStructure naming ``what``."""
    if type(data) is not bytes:
        data = bytes(data)
    try:
        item, end = _top(data, outer_tags, allow_floats, max_depth)
    except _Invalid as error:
        raise BadStructure(f"{what} is not accepted CBOR: {error}") from None
    except IndexError:  # data[pos] past the end: a head promised more than the bytes hold
        raise BadStructure(f"{what} is not accepted CBOR: ends in the middle of an item") from None
    if end != len(data):
        raise BadStructure(f"{what} has {len(data) - end} trailing byte(s)")
    return item


def encode(item: object) -> bytes:
    """Our own values to CBOR (cbor2 writes the shortest heads this decoder requires)."""
    return cbor2.dumps(item)


def _top(data: bytes, outer_tags: Collection[int], floats: bool, max_depth: int) -> tuple[object, int]:
    """The top-level item, unwrapping at most one of each allowed outer tag."""
    pos, tags = 0, []
    while data[pos:pos + 1] and data[pos] >> 5 == 6:
        tag, pos = _argument(data, pos, data[pos] & 31)
        if tag not in outer_tags or tag in tags:
            raise _Invalid(f"tag {tag} is not accepted here")
        tags.append(tag)
    item, pos = _item(data, pos, max_depth, floats)
    for tag in reversed(tags):
        item = Tagged(tag, item)
    return item, pos


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    """The head's argument and the position after the head; shortest form, definite only."""
    if info < 24:
        return info, pos + 1
    if info == 24:
        value = data[pos + 1]
        if value < 24:
            raise _Invalid(f"head at byte {pos} is not in its shortest form")
        return value, pos + 2
    width = _WIDTH.get(info)
    if width is None:
        raise _Invalid(f"{'indefinite length' if info == 31 else 'reserved head'} at byte {pos}")
    end = pos + 1 + width
    if end > len(data):
        raise _Invalid(f"head at byte {pos} ends early")
    value = int.from_bytes(data[pos + 1:end], "big")
    if value < _SHORTEST[info]:
        raise _Invalid(f"head at byte {pos} is not in its shortest form")
    return value, end


def _item(data: bytes, pos: int, depth: int, floats: bool) -> tuple[object, int]:
    """One item at ``pos`` and the position after it; ``depth`` is how many more levels may nest.

    The common short heads are read inline: this runs for every item of every
    scanned ticket, on the decision's hot path.
    """
    initial = data[pos]
    major = initial >> 5
    if major == 7:
        return _simple(data, pos, floats)
    info = initial & 31
    if info < 24:
        arg = info
        pos += 1
    elif info == 24 and data[pos + 1] >= 24:
        arg = data[pos + 1]
        pos += 2
    elif info == 26 and pos + 5 <= len(data) and (data[pos + 1] or data[pos + 2]):  # Unix times, the -65537 label
        arg = int.from_bytes(data[pos + 1:pos + 5], "big")
        pos += 5
    else:
        arg, pos = _argument(data, pos, info)
    if major == 0:
        return arg, pos
    if major == 3 or major == 2:
        end = pos + arg
        if end > len(data):
            raise _Invalid(f"string of {arg} bytes at byte {pos} runs past the end")
        if major == 2:
            return data[pos:end], end
        try:
            return data[pos:end].decode("utf-8"), end
        except UnicodeDecodeError:
            raise _Invalid(f"text string at byte {pos} is not UTF-8") from None
    if major == 1:
        return -1 - arg, pos
    if major == 6:
        raise _Invalid(f"tag {arg} is not accepted here")
    if not depth:
        raise _Invalid(f"nested too deep at byte {pos}")
    if arg > len(data) - pos:  # every element takes at least one byte
        raise _Invalid(f"{'array' if major == 4 else 'map'} of {arg} items at byte {pos} runs past the end")
    depth -= 1
    if major == 4:
        items: list[object] = []
        for _ in range(arg):
            if data[pos] < 24:  # a small unsigned integer, read inline
                items.append(data[pos])
                pos += 1
            else:
                value, pos = _item(data, pos, depth, floats)
                items.append(value)
        return items, pos
    out: dict = {}
    for _ in range(arg):
        start = pos
        head = data[pos]
        key: object
        if head < 24:  # the common small-integer label, read inline
            key, pos = head, pos + 1
        else:
            key, pos = _item(data, pos, depth, floats)
        if type(key) is not int and type(key) is not str:
            raise _Invalid(f"map key at byte {start} is a {type(key).__name__}, only integers and text are keys")
        if key in out:
            raise _Invalid(f"map key {key!r:.40} repeated at byte {start}")
        if data[pos] < 24:  # a small unsigned integer, read inline
            out[key] = data[pos]
            pos += 1
        else:
            out[key], pos = _item(data, pos, depth, floats)
    return out, pos


def _simple(data: bytes, pos: int, floats: bool) -> tuple[object, int]:
    info = data[pos] & 31
    if info in _SIMPLE:
        return _SIMPLE[info], pos + 1
    fmt = _FLOAT_FORMATS.get(info)
    if fmt is None:
        raise _Invalid(f"simple value {info} at byte {pos} is not false, true or null")
    if not floats:
        raise _Invalid(f"float at byte {pos} where none is accepted")
    end = pos + 1 + fmt.size
    if end > len(data):
        raise _Invalid(f"float at byte {pos} ends early")
    (value,) = fmt.unpack_from(data, pos + 1)
    if not math.isfinite(value):
        raise _Invalid(f"float at byte {pos} is not finite")
    return value, end
