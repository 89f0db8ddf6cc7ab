"""On-disk formats of the revocation store: the sorted base file and the delta logs.

Why this shape: 10 million revoked tickets must fit a 512 MB board, open in
well under a second and answer in microseconds. A sorted array of 16-byte
records costs 16 bytes an entry, needs no parsing at open (it is mapped, not
read) and pages in only what lookups touch. A small bucket index at the end
turns the binary search into one ``mmap.find`` over a few hundred bytes, done
in C, so a lookup costs about a microsecond from Python.

Base file (``base.rev``):

- header, 64 bytes, little-endian: magic ``LTREVB01``, u32 format version (1),
  u32 record size (16), u64 record count, u64 hub sequence the file includes,
  u64 generation (logs numbered below it are already merged), u8 index bits
  ``k``, 3 zero bytes, u32 CRC-32 of records + index, 12 zero bytes, u32
  CRC-32 of the 60 bytes before it;
- records, ``count`` x 16 bytes, sorted by key, keys unique: the 12-byte key
  (first 12 bytes of BLAKE2b(cti, digest_size=12)) then the u32 big-endian
  expiry in Unix seconds (``NEVER_EXPIRES`` = 0xFFFFFFFF);
- index, ``2**k + 1`` little-endian u32: records of bucket ``b`` (the first
  ``k`` bits of the key) are ``index[b]`` up to ``index[b + 1]``.

A base file is only ever written whole, to a temporary name, fsync'ed and
renamed over the old one, then the directory is fsync'ed: a reader sees the
old file or the new one, never a mixture. The body CRC is checked by
``verify()`` on demand, not at open, which would read every page.

Log files (``delta.<generation>.log``, ``local.log``): 20-byte header
(``LTREVL01``, u64 generation, u32 CRC-32 of the 16 bytes before), created
whole under a temporary name like the base; then frames, one per delta: u32
record count, u64 hub sequence (0 in ``local.log``), the 16-byte records as
above, u32 CRC-32 of everything in the frame before it. A frame is written
with one ``pwrite`` and fdatasync'ed before the call returns; a frame that
does not check out ends the log (a torn tail), so a delta is present whole
or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import math
import mmap
import os
import struct
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .private import open_private

logger = logging.getLogger(__name__)

KEY_SIZE = 12
RECORD_SIZE = 16
NEVER_EXPIRES = 0xFFFFFFFF
RECORD_DTYPE = np.dtype([("key", f"S{KEY_SIZE}"), ("expiry", ">u4")])
MAGIC = b"LTREVB01"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sIIQQQB3xI12x")
HEADER_SIZE = HEADER.size + 4
MAX_INDEX_BITS = 24
RECORDS_PER_BUCKET = 64  # average 32-64: one find over <= ~1 KB, index <= 0.125 B/entry
CHUNK_RECORDS = 1 << 20  # merge 16 MB at a time, so compaction needs little memory
LOG_MAGIC = b"LTREVL01"
LOG_HEADER = struct.Struct("<8sQ")
FRAME_HEAD = struct.Struct("<IQ")
CRC = struct.Struct("<I")
_fdatasync = getattr(os, "fdatasync", os.fsync)

assert HEADER_SIZE == 64 and RECORD_DTYPE.itemsize == RECORD_SIZE


class RevocationStoreError(Exception):
    """The revocation store cannot do what was asked; the message names the file."""


class CorruptStore(RevocationStoreError):
    """A file of the store is not what this code wrote; restore from a hub snapshot."""


class SequenceGap(RevocationStoreError):
    """A hub delta does not follow the last one applied; ask the hub for a snapshot."""

    def __init__(self, message: str, expected: int, received: int) -> None:
        super().__init__(message)
        self.expected, self.received = expected, received


class StoreLocked(RevocationStoreError):
    """Another process (or another open in this one) holds the store directory."""


class StoreClosed(RevocationStoreError):
    """The set was used after ``close()``."""


class InvalidEntry(RevocationStoreError, ValueError):
    """An entry is not (ticket id bytes of 1..64, expiry int >= 0); nothing was written."""


def revocation_key(ticket_id: bytes) -> bytes:
    """The 12-byte key stored for a ticket id (cti of any length).

    BLAKE2b-96: two distinct ids share a key with odds about n^2 / 2^97, 6e-16
    for 10 M entries; a valid ticket is taken for a revoked one with odds
    n / 2^96 (1e-22) per scan.
    """
    return hashlib.blake2b(ticket_id, digest_size=KEY_SIZE).digest()


def index_bits_for(count: int) -> int:
    """Buckets so that each holds on average 32 to 64 records."""
    if count <= RECORDS_PER_BUCKET:
        return 0
    return min(MAX_INDEX_BITS, math.ceil(math.log2(count / RECORDS_PER_BUCKET)))


def key_prefixes(keys: np.ndarray) -> np.ndarray:
    """First 4 bytes of each S12 key as native uint32 (big-endian order preserved)."""
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(-1, KEY_SIZE)[:, :4]
    return np.ascontiguousarray(raw).view(">u4").ravel().astype(np.uint32)


def buckets_of(keys: np.ndarray, bits: int) -> np.ndarray:
    if bits == 0:
        return np.zeros(len(keys), dtype=np.intp)
    return (key_prefixes(keys) >> np.uint32(32 - bits)).astype(np.intp)


def sort_unique(records: np.ndarray) -> np.ndarray:
    """Records sorted by key with one record per key, keeping the latest expiry."""
    if len(records) == 0:
        return np.empty(0, RECORD_DTYPE)
    raw = np.ascontiguousarray(records).view(np.uint8).reshape(-1, RECORD_SIZE)
    high = np.ascontiguousarray(raw[:, :8]).view(">u8").ravel().astype(np.uint64)
    low = np.ascontiguousarray(raw[:, 8:12]).view(">u4").ravel().astype(np.uint32)
    order = np.argsort(high, kind="stable")
    sorted_high = high[order]
    if np.any(sorted_high[1:] == sorted_high[:-1]):  # duplicates or a 64-bit tie: full three-key sort
        order = np.lexsort((records["expiry"], low, high))
        sorted_high = high[order]
    sorted_low = low[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (sorted_high[1:] != sorted_high[:-1]) | (sorted_low[1:] != sorted_low[:-1])
    return records[order[last]].astype(RECORD_DTYPE, copy=False)  # concatenate() may have made the expiry native


@dataclass(frozen=True)
class BaseHeader:
    count: int
    sequence: int
    generation: int
    index_bits: int
    body_crc: int


def _pack_header(header: BaseHeader) -> bytes:
    packed = HEADER.pack(MAGIC, FORMAT_VERSION, RECORD_SIZE, header.count, header.sequence, header.generation, header.index_bits, header.body_crc)
    return packed + struct.pack("<I", zlib.crc32(packed))


def _unpack_header(data: bytes, path: Path, size: int) -> BaseHeader:
    if len(data) < HEADER_SIZE:
        raise CorruptStore(f"{path}: {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, record_size, count, sequence, generation, bits, body_crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptStore(f"{path}: not a revocation base file (magic {magic!r})")
    if struct.unpack_from("<I", data, HEADER.size)[0] != zlib.crc32(data[: HEADER.size]):
        raise CorruptStore(f"{path}: header checksum mismatch")
    if version != FORMAT_VERSION or record_size != RECORD_SIZE or bits > MAX_INDEX_BITS:
        raise CorruptStore(f"{path}: unsupported format version {version}, record size {record_size}, index bits {bits}")
    expected = HEADER_SIZE + count * RECORD_SIZE + 4 * ((1 << bits) + 1)
    if size != expected:
        raise CorruptStore(f"{path}: {size} bytes, header promises {expected} ({count} records)")
    return BaseHeader(count, sequence, generation, bits, body_crc)


def fsync_directory(directory: Path) -> None:
    """Make renames and new names in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SortedIds:
    """One opened, immutable base file. Safe to share between threads.

    Nothing is read at open but the header: records and index are mapped
    (``MADV_RANDOM``, so a lookup faults in one page, not a read-ahead
    window). The mapping lives as long as this object; a replaced file stays
    readable through it until the last reference goes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self.header = _unpack_header(handle.read(HEADER_SIZE), path, size)
            self._map = mmap.mmap(handle.fileno(), size, prot=mmap.PROT_READ)
        if hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_RANDOM)
        self.count = self.header.count
        self.records = np.frombuffer(self._map, RECORD_DTYPE, count=self.count, offset=HEADER_SIZE)
        index_offset = HEADER_SIZE + self.count * RECORD_SIZE
        self._index_array = np.frombuffer(self._map, "<u4", count=(1 << self.header.index_bits) + 1, offset=index_offset)
        if sys.byteorder == "little":
            self._index: Sequence[int] = memoryview(self._map)[index_offset:].cast("I")
        else:  # the u32 table is stored little-endian; keep a native copy on big-endian hosts
            self._index = self._index_array.astype(np.uint32).tolist()
        self._shift = 32 - self.header.index_bits
        self._find = self._map.find

    @property
    def sequence(self) -> int:
        return self.header.sequence

    @property
    def generation(self) -> int:
        return self.header.generation

    def contains(self, key: bytes) -> bool:
        """Whether the 12-byte ``key`` is in the file: one bucket, one find in C."""
        bucket = int.from_bytes(key[:4], "big") >> self._shift
        index = self._index
        end = HEADER_SIZE + (index[bucket + 1] << 4)
        position = self._find(key, HEADER_SIZE + (index[bucket] << 4), end)
        while position >= 0:
            if not position & 15:  # records start at multiples of 16 (header is 64 bytes)
                return True
            position = self._find(key, position + 1, end)
        return False

    def search(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised: insertion position of each S12 key and whether it is present.

        A binary search per key inside its bucket, all keys at once with
        numpy; used to place a batch (a delta, an overlay being compacted).
        """
        size = len(keys)
        if self.count == 0 or size == 0:
            return np.zeros(size, dtype=np.int64), np.zeros(size, dtype=bool)
        bucket = buckets_of(keys, self.header.index_bits)
        low = self._index_array[bucket].astype(np.int64)
        high = self._index_array[bucket + 1].astype(np.int64)
        stored = self.records["key"]
        last = self.count - 1
        active = low < high
        while active.any():
            middle = (low + high) >> 1
            less = stored[np.minimum(middle, last)] < keys
            low = np.where(active & less, middle + 1, low)
            high = np.where(active & ~less, middle, high)
            active = low < high
        found = (low <= last) & (stored[np.minimum(low, last)] == keys)
        return low, found

    def verify(self) -> None:
        """Read every byte and check the body CRC; raises CorruptStore."""
        crc = zlib.crc32(memoryview(self._map)[HEADER_SIZE:])
        if crc != self.header.body_crc:
            raise CorruptStore(f"{self.path}: body checksum {crc:08x}, header says {self.header.body_crc:08x}")

    def read_chunks(self) -> Iterable[tuple[int, np.ndarray]]:
        """(first record number, records) in order, read with plain reads for read-ahead."""
        with open(self.path, "rb") as handle:
            for first in range(0, self.count, CHUNK_RECORDS):
                length = min(CHUNK_RECORDS, self.count - first) * RECORD_SIZE
                data = os.pread(handle.fileno(), length, HEADER_SIZE + first * RECORD_SIZE)
                if len(data) != length:
                    raise CorruptStore(f"{self.path}: short read at record {first}")
                yield first, np.frombuffer(data, RECORD_DTYPE).copy()


class _BaseWriter:
    """Writes sorted, unique record chunks to ``<path>.tmp`` then renames it into place."""

    def __init__(self, path: Path, count_upper_bound: int) -> None:
        self.path, self.temp = path, path.with_name(path.name + ".tmp")
        self.bits = index_bits_for(count_upper_bound)
        self.bucket_counts = np.zeros(1 << self.bits, dtype=np.int64)
        self.count, self.crc = 0, 0
        self.handle = os.fdopen(open_private(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb")
        self.handle.write(bytes(HEADER_SIZE))

    def write(self, records: np.ndarray) -> None:
        if len(records) == 0:
            return
        records = np.ascontiguousarray(records, dtype=RECORD_DTYPE)
        data = records.view(np.uint8)
        self.handle.write(data.data)  # .data: the array's own memoryview, no copy
        self.crc = zlib.crc32(data.data, self.crc)
        self.bucket_counts += np.bincount(buckets_of(records["key"], self.bits), minlength=len(self.bucket_counts))
        self.count += len(records)

    def finish(self, sequence: int, generation: int) -> BaseHeader:
        if self.count >= 1 << 32:
            raise RevocationStoreError(f"{self.path}: {self.count} records, the u32 index holds at most 2**32 - 1")
        index = np.zeros(len(self.bucket_counts) + 1, dtype="<u4")
        index[1:] = np.cumsum(self.bucket_counts)
        index_bytes = index.tobytes()
        self.handle.write(index_bytes)
        header = BaseHeader(self.count, sequence, generation, self.bits, zlib.crc32(index_bytes, self.crc))
        self.handle.seek(0)
        self.handle.write(_pack_header(header))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.temp, self.path)
        fsync_directory(self.path.parent)
        return header

    def abandon(self) -> None:
        self.handle.close()
        self.temp.unlink(missing_ok=True)


def write_snapshot(path: Path, records: np.ndarray, sequence: int, generation: int) -> BaseHeader:
    """Write ``records`` (any order, duplicates allowed) as the new base file at ``path``.

    Sorted in slices by the top bits of the key, each about ``CHUNK_RECORDS``
    long: the slices are disjoint and in key order, so each is sorted alone
    and streamed out, and the extra memory is that of sorting one slice
    (about 80 bytes a record) instead of the whole array (10 M: ~80 MB, not ~800 MB).
    """
    records = np.ascontiguousarray(records, dtype=RECORD_DTYPE)
    bits = min(8, max(0, math.ceil(math.log2(max(1, len(records)) / CHUNK_RECORDS))))
    writer = _BaseWriter(path, len(records))
    try:
        if bits == 0:
            writer.write(sort_unique(records))
        else:
            top = records.view(np.uint8).reshape(-1, RECORD_SIZE)[:, 0] >> np.uint8(8 - bits)
            for part in range(1 << bits):
                writer.write(sort_unique(records[top == part]))
        return writer.finish(sequence, generation)
    except BaseException:
        writer.abandon()
        raise


def write_merged(path: Path, base: SortedIds, added: np.ndarray, sequence: int, generation: int, now: int | None = None) -> tuple[BaseHeader, int]:
    """Write ``base`` merged with ``added`` (sorted, unique) as the new file at ``path``.

    A key in both keeps the later expiry. With ``now``, records whose expiry
    is at or before ``now`` are left out. Streams the old file in chunks, so
    memory stays near ``CHUNK_RECORDS`` records whatever the size. Returns the
    new header and how many records were left out as expired.
    """
    positions, found = base.search(added["key"])
    updates, inserts = added[found], added[~found]
    update_at, insert_at = positions[found], positions[~found]
    writer = _BaseWriter(path, base.count + len(inserts))
    dropped = 0
    try:
        chunks = base.read_chunks() if base.count else iter([(0, np.empty(0, RECORD_DTYPE))])
        for first, chunk in chunks:
            stop = first + len(chunk)
            in_chunk = slice(np.searchsorted(update_at, first), np.searchsorted(update_at, stop))
            rows = update_at[in_chunk] - first
            chunk["expiry"][rows] = np.maximum(chunk["expiry"][rows], updates["expiry"][in_chunk])
            insert_stop = len(insert_at) if stop >= base.count else np.searchsorted(insert_at, stop)
            take = slice(np.searchsorted(insert_at, first), insert_stop)
            if take.stop > take.start:
                chunk = np.insert(chunk, insert_at[take] - first, inserts[take])
            if now is not None:
                keep = chunk["expiry"] > now
                dropped += len(chunk) - int(keep.sum())
                chunk = chunk[keep]
            writer.write(chunk)
        return writer.finish(sequence, generation), dropped
    except BaseException:
        writer.abandon()
        raise


# ---- logs ---------------------------------------------------------------------------


def write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class FrameLog:
    """An append-only file of CRC'd frames; ``append`` returns once the frame is on disk."""

    def __init__(self, path: Path, fd: int, length: int) -> None:
        self.path, self._fd, self._length = path, fd, length

    @classmethod
    def create(cls, path: Path, generation: int, payload: bytes | None = None) -> FrameLog:
        """Atomically (re)place ``path`` by a log holding at most one frame."""
        header = LOG_HEADER.pack(LOG_MAGIC, generation)
        data = header + CRC.pack(zlib.crc32(header)) + (frame_bytes(0, payload) if payload is not None else b"")
        temp = path.with_name(path.name + ".tmp")
        fd = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            write_all(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        fsync_directory(path.parent)
        return cls(path, open_private(path, os.O_WRONLY), len(data))

    @classmethod
    def reopen(cls, path: Path, valid_length: int) -> FrameLog:
        """Open for appending after ``valid_length`` bytes, cutting off a torn tail durably."""
        fd = open_private(path, os.O_WRONLY)
        if os.fstat(fd).st_size > valid_length:
            os.ftruncate(fd, valid_length)
            os.fsync(fd)
        return cls(path, fd, valid_length)

    def append(self, sequence: int, payload: bytes) -> None:
        self.append_frames([(sequence, payload)])

    def append_frames(self, frames: list[tuple[int, bytes]]) -> None:
        """Several frames in one write and one fdatasync.

        Each frame carries its own CRC, so a crash in the middle leaves a valid
        prefix of whole frames (``read_log``): the deltas after it were never
        acknowledged to the broker and come again.
        """
        offset = self._length
        data = b"".join(frame_bytes(sequence, payload) for sequence, payload in frames)
        try:
            write_all(self._fd, data, offset)
            _fdatasync(self._fd)
        except OSError as error:
            try:  # leave no half frame behind: a later rotation would turn it into corruption
                os.ftruncate(self._fd, offset)
            except OSError as truncate_error:
                logger.error("%s: could not cut a failed append back to %d bytes: %s", self.path, offset, truncate_error)
            sequences = f"{frames[0][0]}..{frames[-1][0]}" if len(frames) > 1 else f"{frames[0][0]}"
            raise RevocationStoreError(f"{self.path}: appending sequence {sequences} failed: {error}") from error
        self._length = offset + len(data)

    def close(self) -> None:
        os.close(self._fd)


def frame_bytes(sequence: int, payload: bytes) -> bytes:
    head = FRAME_HEAD.pack(len(payload) // RECORD_SIZE, sequence)
    return head + payload + CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def read_log(path: Path, generation: int) -> tuple[list[tuple[int, bytes]], int, int]:
    """(frames as (sequence, payload), length of the valid prefix, file length)."""
    data = path.read_bytes()
    start = LOG_HEADER.size + CRC.size
    if len(data) < start or data[:8] != LOG_MAGIC or CRC.unpack_from(data, LOG_HEADER.size)[0] != zlib.crc32(data[: LOG_HEADER.size]):
        raise CorruptStore(f"{path}: not a revocation log (bad header)")
    if LOG_HEADER.unpack_from(data)[1] != generation:
        raise CorruptStore(f"{path}: header says generation {LOG_HEADER.unpack_from(data)[1]}, name says {generation}")
    frames, offset, view = [], start, memoryview(data)
    while len(data) - offset >= FRAME_HEAD.size + CRC.size:
        count, sequence = FRAME_HEAD.unpack_from(data, offset)
        end = offset + FRAME_HEAD.size + count * RECORD_SIZE
        if end + CRC.size > len(data) or CRC.unpack_from(data, end)[0] != zlib.crc32(view[offset:end]):
            break
        frames.append((sequence, data[offset + FRAME_HEAD.size : end]))
        offset = end + CRC.size
    return frames, offset, len(data)


def keys_of(payload: bytes) -> list[bytes]:
    # Slice the bytes: numpy's S12 -> bytes conversion strips trailing NULs.
    return [payload[offset : offset + KEY_SIZE] for offset in range(0, len(payload), RECORD_SIZE)]
