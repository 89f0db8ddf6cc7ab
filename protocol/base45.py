"""Base45 (RFC 9285), decoded with whole-string integer arithmetic.

The pure-Python ``base45`` package decodes a ticket in about as long as the
Ed25519 verification itself takes, which alone would spend the latency
budget of a decision. Here the digits of every three-character group are
lined up in 24-bit lanes of one Python integer and combined with three
masked multiply-adds, so the work is a handful of C-level big-int operations
whatever the length (about 4 us for a ticket, against 56 us). The package
stays as the test oracle (tests/protocol/test_base45.py).
"""

from __future__ import annotations

from .errors import BadEncoding

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
_DECODE_TABLE = bytes(ALPHABET.index(chr(c)) if chr(c) in ALPHABET else _INVALID for c in range(256))
_MAX_GROUPS = 2048
_LOW_LANE = int.from_bytes(b"\xff\x00\x00" * _MAX_GROUPS, "little")
_HIGH_LANE = int.from_bytes(b"\x00\x00\xff" * _MAX_GROUPS, "little")


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text (two bytes to three characters)."""
    out: list[str] = []
    for index in range(0, len(data) - 1, 2):
        value = data[index] * 256 + data[index + 1]
        out += (ALPHABET[value % 45], ALPHABET[value // 45 % 45], ALPHABET[value // 2025])
    if len(data) % 2:
        out += (ALPHABET[data[-1] % 45], ALPHABET[data[-1] // 45])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode base45 text; any invalid character, length or group is BadEncoding."""
    try:
        digits = text.encode("ascii").translate(_DECODE_TABLE)
    except UnicodeEncodeError as exc:
        raise BadEncoding(f"non-ASCII character at position {exc.start}") from None
    if len(digits) % 3 == 1:
        raise BadEncoding(f"base45 length {len(digits)} leaves a dangling character")
    if len(digits) > 3 * _MAX_GROUPS:
        raise BadEncoding(f"base45 text of {len(digits)} characters is longer than any ticket")
    position = digits.find(_INVALID)
    if position >= 0:
        raise BadEncoding(f"character {text[position]!r} at position {position} is not base45")
    full = len(digits) // 3 * 3
    lanes = int.from_bytes(digits[:full], "little")
    # Each 24-bit lane now holds c + 45 d + 2025 e <= 91124: no carry into the next lane.
    values = (lanes & _LOW_LANE) + 45 * ((lanes >> 8) & _LOW_LANE) + 2025 * ((lanes >> 16) & _LOW_LANE)
    if values & _HIGH_LANE:
        raise BadEncoding("a base45 group encodes a value above 65535")
    little = values.to_bytes(full, "little")
    out = bytearray(full // 3 * 2)
    out[0::2] = little[1::3]
    out[1::2] = little[0::3]
    if full < len(digits):
        tail = digits[full] + 45 * digits[full + 1]
        if tail > 0xFF:
            raise BadEncoding("the final base45 pair encodes a value above 255")
        out.append(tail)
    return bytes(out)
