"""Snapshots of a site stream, sent to one gate in hash-checked chunks on ``snapshot/<gate>``.

A gate that missed deltas (a gap, a pong head above what it applied, a new
incarnation) asks for a snapshot; the hub sends the stream's whole state as
of a seq in chunks, and the gate installs it only when every chunk is in and
the SHA-256 over all of them matches (docs/hub-protocol.md, section 4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from .cbor import encode
from .hub_messages import MAX_ITEMS, decode_revocations, decode_used_mark
from .messages import MAX_MESSAGE_BYTES, MAX_SEQ, MalformedMessage, MessageError, decode_payload, read_bytes, read_int, read_list, read_map
from .topics import REVOCATIONS, SITE_STREAMS


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
    parts = [encode(list(entries[start:start + chunk_size])) for start in range(0, len(entries), chunk_size)] or [encode([])]
    digest = hashlib.sha256(b"".join(parts)).digest()
    return [{"of": of, "as_of": as_of, "snapshot_id": snapshot_id, "index": index, "count": len(parts), "sha256": digest, "data": data} for index, data in enumerate(parts)]


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
            items = read_list(decode_payload(data, "snapshot chunk data"), "snapshot chunk data", MAX_ITEMS)
            entries.extend(decode_revocations(items) if chunk.of == REVOCATIONS else [decode_used_mark(item) for item in items])
        return Snapshot(chunk.of, chunk.as_of, entries)


