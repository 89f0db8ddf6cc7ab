"""Snapshots of a site stream, sent to one gate in hash-checked chunks on ``snapshot/<gate>``.

A gate that missed deltas (a gap, a pong head above what it applied, a new
incarnation) asks for a snapshot; the hub sends the stream's whole state as
of a seq in chunks, and the gate installs it only when every chunk is in and
the SHA-256 over all of them matches (docs/hub-protocol.md, section 4).
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .cbor import encode
from .hub_messages import MAX_ITEMS, RevocationEntry, decode_revocations, decode_used_mark
from .messages import MAX_MESSAGE_BYTES, MAX_SEQ, MalformedMessage, MessageError, decode_payload, read_bytes, read_int, read_list, read_map
from .topics import REVOCATIONS, SITE_STREAMS


# The hub's layout of a revocation entry of a 16-byte id and a Unix-seconds expiry: 23 bytes, packed and cut by struct
UNIFORM_ITEM = struct.Struct(">2s16scI")  # 0x82 0x50 (an array of 2, a 16-byte string), the id, 0x1a, a 4-byte expiry
ITEM_HEAD, EXPIRY_HEAD = b"\x82\x50", b"\x1a"
SHORTEST_4_BYTE = 0x10000  # smaller values have a shorter head: the strict decoder refuses them in 4 bytes
_id_and_expiry = operator.itemgetter(1, 3)
_first, _second = operator.itemgetter(0), operator.itemgetter(1)


@dataclass(frozen=True)
class SnapshotChunk:
    """One chunk of the full state of ``of`` as of stream seq ``as_of``.

    ``data`` is the CBOR array of this chunk's entries, kept as bytes so the
    gate hashes exactly what it received: ``sha256`` is SHA-256 over the
    ``data`` of chunks 0..count-1 concatenated in order.
    """

    of: str
    as_of: int
    snapshot_id: bytes
    index: int
    count: int
    sha256: bytes
    data: bytes


@dataclass(frozen=True)
class Snapshot:
    """A complete, hash-checked snapshot: replace the set for ``of`` and reset its seq to ``as_of``."""

    of: str
    as_of: int
    entries: list


def snapshot_bodies(of: str, as_of: int, entries: Sequence[object], chunk_size: int, snapshot_id: bytes) -> list[dict]:
    """Chunk bodies for a snapshot; ``entries`` are wire items ([id, exp] or used-mark maps)."""
    parts = [_encode_chunk(of, entries[start:start + chunk_size]) for start in range(0, len(entries), chunk_size)] or [encode([])]
    digest = hashlib.sha256(b"".join(parts)).digest()
    return [{"of": of, "as_of": as_of, "snapshot_id": snapshot_id, "index": index, "count": len(parts), "sha256": digest, "data": data} for index, data in enumerate(parts)]


def _encode_chunk(of: str, items: Sequence[object]) -> bytes:
    """The CBOR array of one chunk's items. Revocations in the uniform layout (``_uniform_revocations``) are packed
    by ``struct``, byte for byte what ``encode`` makes of them, in a tenth of its time (a hub sends millions)."""
    packed = _pack_uniform(items) if of == REVOCATIONS else None
    return packed if packed is not None else encode(list(items))


def _pack_uniform(items: Sequence[object]) -> bytes | None:
    """``items`` ([ticket_id, expires] pairs) packed, when every id has 16 bytes and every expiry a 4-byte head; else None."""
    if not items or set(map(type, items)) - {list, tuple} or set(map(len, items)) != {2}:  # type: ignore[arg-type]
        return None
    ids, expiries = list(map(_first, items)), list(map(_second, items))  # type: ignore[arg-type]
    if set(map(type, ids)) != {bytes} or set(map(len, ids)) != {16} or set(map(type, expiries)) != {int}:
        return None
    if min(expiries) < SHORTEST_4_BYTE or max(expiries) > 0xFFFFFFFF:
        return None
    return _array_head_bytes(len(items)) + b"".join(map(UNIFORM_ITEM.pack, itertools.repeat(ITEM_HEAD), ids, itertools.repeat(EXPIRY_HEAD), expiries))


def _array_head_bytes(count: int) -> bytes:
    """The shortest CBOR head of an array of ``count`` items."""
    if count < 24:
        return bytes([0x80 | count])
    width = 1 if count < 0x100 else 2 if count < 0x10000 else 4
    return bytes([0x98 + width.bit_length() - 1]) + count.to_bytes(width, "big")


def decode_snapshot_chunk(body: object) -> SnapshotChunk:
    fields = read_map(body, "snapshot chunk", {"of", "as_of", "snapshot_id", "index", "count", "sha256", "data"})
    of = fields.get("of")
    if of not in SITE_STREAMS:
        raise MalformedMessage(f"snapshot chunk 'of' must be one of {', '.join(SITE_STREAMS)}")
    count = read_int(fields.get("count"), "count", 1, 1_000_000)
    return SnapshotChunk(
        of=of,
        as_of=read_int(fields.get("as_of"), "as_of", 0, MAX_SEQ),
        snapshot_id=read_bytes(fields.get("snapshot_id"), "snapshot_id", 1, 32),
        index=read_int(fields.get("index"), "index", 0, count - 1),
        count=count,
        sha256=read_bytes(fields.get("sha256"), "sha256", 32, 32),
        data=read_bytes(fields.get("data"), "data", 1, MAX_MESSAGE_BYTES),
    )


class SnapshotMismatch(MessageError):
    """The chunks of a snapshot do not hash to what they claim; discard and ask again."""

    reason = "snapshot_mismatch"


class SnapshotAssembler:
    """Collects the chunks of one snapshot per ``of``; a newer snapshot id replaces an unfinished one."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[SnapshotChunk, dict[int, bytes]]] = {}

    def add(self, chunk: SnapshotChunk) -> Snapshot | None:
        """The complete snapshot once its last chunk arrives, else None; raises SnapshotMismatch."""
        first, parts = self._parts.get(chunk.of, (chunk, {}))
        if (first.snapshot_id, first.count, first.sha256, first.as_of) != (chunk.snapshot_id, chunk.count, chunk.sha256, chunk.as_of):
            first, parts = chunk, {}
        parts[chunk.index] = chunk.data
        self._parts[chunk.of] = (first, parts)
        if len(parts) < chunk.count:
            return None
        del self._parts[chunk.of]
        ordered = [parts[index] for index in range(chunk.count)]
        if hashlib.sha256(b"".join(ordered)).digest() != chunk.sha256:
            raise SnapshotMismatch(f"{chunk.of} snapshot {chunk.snapshot_id.hex()} does not match its sha256")
        entries: list = []
        for data in ordered:  # each chunk within the bound of one message; the whole may hold millions (a site's revocations)
            entries.extend(revocation_chunk_entries(data) if chunk.of == REVOCATIONS else [decode_used_mark(item) for item in _chunk_items(data)])
        return Snapshot(chunk.of, chunk.as_of, entries)


def _chunk_items(data: bytes) -> list:
    return read_list(decode_payload(data, "snapshot chunk data"), "snapshot chunk data", MAX_ITEMS)


def revocation_chunk_entries(data: bytes) -> list[RevocationEntry]:
    """The entries of one revocation chunk's ``data``; raises MalformedMessage as ``decode_revocations`` does.

    The hub lays out every entry of a 16-byte ticket id and a Unix-seconds
    expiry alike, so such a chunk is checked and cut with byte slices (a
    million entries in well under a second, where the general decoder takes
    several); anything else goes through the general strict decoder.
    """
    uniform = _uniform_revocations(data)
    return uniform if uniform is not None else decode_revocations(_chunk_items(data))


def _array_head(data: bytes) -> tuple[int, int] | None:
    """(count, offset of the first item) of a definite-length array head in its shortest form; None for anything else."""
    if not data or data[0] >> 5 != 4:
        return None
    info = data[0] & 31
    if info < 24:
        return info, 1
    width = {24: 1, 25: 2, 26: 4}.get(info)
    if width is None or len(data) < 1 + width:
        return None
    count = int.from_bytes(data[1:1 + width], "big")
    return (count, 1 + width) if count >= (24 if width == 1 else 1 << (4 * width)) else None


def _uniform_revocations(data: bytes) -> list[RevocationEntry] | None:
    """The entries of a chunk made only of ``[16-byte id, 4-byte-head expiry]`` items, or None to use the general decoder.

    Accepts exactly what the general decoder accepts in that layout: the
    array head in its shortest form, every item's head bytes checked, the
    length exact (nothing trailing), every expiry in its shortest head. The
    entries are cut by ``struct`` and made in C (no Python code per entry).
    """
    head = _array_head(data)
    if head is None:
        return None
    count, start = head
    size = UNIFORM_ITEM.size
    if count > MAX_ITEMS or len(data) != start + count * size:
        return None
    if (data[start::size] != ITEM_HEAD[:1] * count or data[start + 1::size] != ITEM_HEAD[1:] * count
            or data[start + 18::size] != EXPIRY_HEAD * count):
        return None
    entries = list(map(tuple.__new__, itertools.repeat(RevocationEntry), map(_id_and_expiry, UNIFORM_ITEM.iter_unpack(data[start:]))))
    if entries and min(map(_second, entries)) < SHORTEST_4_BYTE:
        return None
    return entries
