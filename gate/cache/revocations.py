"""The gate's revocation set: 10 M revoked ticket ids, durable, looked up in ~1 us.

Three layers, checked in this order by every lookup:

- the **overlay**: keys of hub deltas applied since the last compaction, a
  Python set (bounded by ``overlay_limit``, 100 k records by default), each
  delta first appended to ``delta.<generation>.log`` and fdatasync'ed;
- the **local list**: tickets revoked at this gate (``revoke_local``), in
  ``local.log``, kept apart from hub data so a hub snapshot never erases them;
  they end only when ``prune_expired`` finds them expired;
- the **base**: ``base.rev``, every older entry sorted and memory-mapped.

Compaction merges the overlay into a new base while lookups and new deltas
go on: the log is rotated first, so the new base covers exactly the logs
numbered below its generation, and those are deleted afterwards. Opening
replays the logs at or above the base's generation; a torn frame at the end
of the newest log (a power cut during an append that never returned) is cut
off with a warning. File formats: ``revocation_files``.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from .private import make_private_dir, open_private
from .revocation_files import (
    KEY_SIZE,
    NEVER_EXPIRES,
    RECORD_DTYPE,
    CorruptStore,
    FrameLog,
    InvalidEntry,
    RevocationStoreError,
    SequenceGap,
    SortedIds,
    StoreClosed,
    StoreLocked,
    keys_of,
    read_log,
    revocation_key,
    sort_unique,
    write_merged,
    write_snapshot,
)

__all__ = [
    "NEVER_EXPIRES", "RECORD_DTYPE", "CorruptStore", "InvalidEntry", "RevocationSet", "RevocationStats",
    "RevocationStoreError", "SequenceGap", "StoreClosed", "StoreLocked", "revocation_key",
]

logger = logging.getLogger(__name__)

DEFAULT_OVERLAY_LIMIT = 100_000
SNAPSHOT_BATCH = 65_536
MAX_TICKET_ID = 64
BASE_NAME, LOCAL_NAME, LOCK_NAME = "base.rev", "local.log", "lock"
LOG_NAME = re.compile(r"delta\.(\d{12})\.log")
_blake2b = hashlib.blake2b


@dataclass(frozen=True)
class RevocationStats:
    """Counts for ``lungta gate state``: distinct entries and where they live."""

    sequence: int
    entries: int
    base_entries: int
    overlay_entries: int
    local_entries: int
    generation: int


def _log_path(directory: Path, generation: int) -> Path:
    return directory / f"delta.{generation:012d}.log"


def _encode_entries(entries: Iterable[tuple[bytes, int]], where: Path, first: int = 0) -> tuple[list[bytes], list[int], bytes]:
    """Keys, expiries (beyond 2106 kept as NEVER_EXPIRES) and the 16-byte records of ``entries``."""
    keys: list[bytes] = []
    expiries: list[int] = []
    parts: list[bytes] = []
    for number, (ticket_id, expiry) in enumerate(entries, first):
        if type(ticket_id) is not bytes or not 0 < len(ticket_id) <= MAX_TICKET_ID:
            raise InvalidEntry(f"{where}: entry {number}: ticket id must be 1..{MAX_TICKET_ID} bytes, got {ticket_id!r:.80}")
        if type(expiry) is not int or expiry < 0:
            raise InvalidEntry(f"{where}: entry {number}: expiry must be Unix seconds >= 0, got {expiry!r:.40}")
        expiry = min(expiry, NEVER_EXPIRES)
        key = _blake2b(ticket_id, digest_size=KEY_SIZE).digest()
        keys.append(key)
        expiries.append(expiry)
        parts.append(key)
        parts.append(expiry.to_bytes(4, "big"))
    return keys, expiries, b"".join(parts)


def _check_sequence(sequence: int, where: Path) -> None:
    if not isinstance(sequence, int) or not 0 <= sequence < 1 << 64:
        raise InvalidEntry(f"{where}: sequence must be an int in 0..2**64-1, got {sequence!r:.40}")


class _ClosedBase:
    count = 0
    generation = 0

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def contains(self, key: bytes) -> bool:
        raise StoreClosed(f"{self.directory}: revocation set used after close()")


class RevocationSet:
    """Revoked ticket ids of one gate, in ``directory``; open with ``RevocationSet.open``.

    Durability: ``apply_delta``, ``revoke_local`` and ``replace_with_snapshot``
    return only once their data is fsync'ed; a SIGKILL or power cut at any
    instant leaves a store that opens with every returned change and with
    ``sequence`` matching its contents exactly (a delta is all or nothing).

    Threads: lookups (``is_revoked``, ``in``, ``len``, ``sequence``) take no
    lock and may run in any number of threads, also during compaction; a
    lookup that starts after a change returned sees it. Changes are
    serialised by an internal lock, so any thread may make them, but one
    writer thread is the intended use. ``compact``/``prune_expired`` may run
    in a maintenance thread while the writer keeps applying deltas. With
    ``auto_compact``, a background thread compacts once the overlay holds
    ``overlay_limit`` records; it mostly runs in numpy and file I/O, and
    when it competes for the GIL it is the compaction that slows, not the
    lookups (see bench_revocations). Only one process may open a directory.
    """

    def __init__(self, directory: Path, lock_fd: int, overlay_limit: int, auto_compact: bool) -> None:
        self.directory, self._lock_fd = directory, lock_fd
        self._overlay_limit, self._auto_compact = overlay_limit, auto_compact
        self._next_compaction_at = overlay_limit
        self._write_lock, self._compaction_lock = threading.Lock(), threading.Lock()
        self._compactor: threading.Thread | None = None
        self._closing = self._closed = False
        self._pending: list[np.ndarray] = []
        self._pending_count = 0
        self._base_path = directory / BASE_NAME
        for stale in directory.glob("*.tmp"):
            stale.unlink()
        if not self._base_path.exists():
            write_snapshot(self._base_path, np.empty(0, RECORD_DTYPE), 0, 0)
        base = SortedIds(self._base_path)
        self._view: tuple[SortedIds | _ClosedBase, set[bytes], set[bytes]] = (base, set(), set())
        self._sequence = base.sequence
        self._log_generation, self._log = self._replay_deltas(base)
        self._local: dict[bytes, int] = {}
        self._local_log = self._replay_local()
        logger.info("opened %s: sequence %d, %d entries (%d in overlay, %d local)", directory, self._sequence, len(self), len(self._view[2]), len(self._local))
        with self._write_lock:
            self._maybe_start_compaction()

    @classmethod
    def open(cls, directory: Path, *, overlay_limit: int = DEFAULT_OVERLAY_LIMIT, auto_compact: bool = True) -> RevocationSet:
        """Open the store in ``directory``, creating it if absent; raises StoreLocked, CorruptStore."""
        directory = Path(directory)
        make_private_dir(directory)
        lock_fd = open_private(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreLocked(f"{directory}: revocation store is open in another process or handle") from None
        try:
            return cls(directory, lock_fd, overlay_limit, auto_compact)
        except BaseException:
            os.close(lock_fd)
            raise

    def _replay_deltas(self, base: SortedIds) -> tuple[int, FrameLog]:
        logs = sorted((int(match.group(1)), self.directory / match.group(0)) for match in map(LOG_NAME.fullmatch, os.listdir(self.directory)) if match)
        for generation, path in logs:
            if generation < base.generation:  # merged into the base by a compaction that died before deleting it
                path.unlink()
        live = [(generation, path) for generation, path in logs if generation >= base.generation]
        valid_length = 0
        for number, (generation, path) in enumerate(live):
            frames, valid_length, size = read_log(path, generation)
            if valid_length < size:
                if number < len(live) - 1:
                    raise CorruptStore(f"{path}: damaged frame at byte {valid_length} of a log that is not the newest")
                logger.warning("%s: ignoring a torn tail of %d bytes (an append cut off before it returned)", path, size - valid_length)
            for sequence, payload in frames:
                if sequence != self._sequence + 1:
                    raise CorruptStore(f"{path}: delta {sequence} follows {self._sequence}")
                self._sequence = sequence
                self._absorb(payload)
        if not live:
            return base.generation, FrameLog.create(_log_path(self.directory, base.generation), base.generation)
        return live[-1][0], FrameLog.reopen(live[-1][1], valid_length)

    def _replay_local(self) -> FrameLog:
        path = self.directory / LOCAL_NAME
        if not path.exists():
            return FrameLog.create(path, 0)
        frames, valid_length, size = read_log(path, 0)
        if valid_length < size:
            logger.warning("%s: ignoring a torn tail of %d bytes", path, size - valid_length)
        for _, payload in frames:
            self._remember_local(keys_of(payload), np.frombuffer(payload, RECORD_DTYPE)["expiry"].tolist())
        return FrameLog.reopen(path, valid_length)

    def _absorb(self, payload: bytes) -> None:
        """Put an already durable delta into the overlay (keys new to base and frozen only)."""
        records = np.frombuffer(payload, RECORD_DTYPE)
        base, frozen, overlay = self._view
        assert isinstance(base, SortedIds)
        _, in_base = base.search(records["key"])
        overlay.update(key for key, known in zip(keys_of(payload), in_base.tolist()) if not known and key not in frozen)
        self._pending.append(records)
        self._pending_count += len(records)

    def _remember_local(self, keys: list[bytes], expiries: list[int]) -> None:
        local = self._local
        for key, expiry in zip(keys, expiries):
            local[key] = max(expiry, local.get(key, 0))

    # ---- lookups: no lock, any thread ----------------------------------------------

    def is_revoked(self, ticket_id: bytes) -> bool:
        """Whether the ticket id (raw cti bytes) is revoked, by the hub or locally."""
        key = _blake2b(ticket_id, digest_size=KEY_SIZE).digest()
        base, frozen, overlay = self._view
        return key in overlay or key in frozen or key in self._local or base.contains(key)

    __contains__ = is_revoked

    def __len__(self) -> int:
        """Distinct revoked keys (a ticket revoked both locally and by the hub counts once)."""
        base, frozen, overlay = self._view
        local_only = sum(1 for key in list(self._local) if not (key in overlay or key in frozen or base.contains(key)))
        return base.count + len(frozen) + len(overlay) + local_only

    @property
    def sequence(self) -> int:
        """Sequence of the last hub delta or snapshot applied; 0 for none."""
        return self._sequence

    def stats(self) -> RevocationStats:
        base, frozen, overlay = self._view
        return RevocationStats(self._sequence, len(self), base.count, len(frozen) + len(overlay), len(self._local), base.generation)

    # ---- changes: serialised by the write lock -------------------------------------

    def apply_delta(self, sequence: int, entries: Iterable[tuple[bytes, int]]) -> None:
        """Add a hub delta of (ticket id, expiry) durably, then make it visible.

        ``sequence`` must be exactly ``self.sequence + 1`` (else SequenceGap:
        the caller should ask for a snapshot). A ``sequence`` at or below the
        current one is a replay and returns without any change, so the hub
        may resend freely. Entries are validated before anything is written.
        """
        self.apply_deltas([(sequence, entries)])

    def apply_deltas(self, deltas: Sequence[tuple[int, Iterable[tuple[bytes, int]]]]) -> None:
        """As ``apply_delta`` for consecutive deltas, made durable by one write and one fsync.

        A gate back from a partition receives at once the hundreds of deltas
        the broker queued for it; an fsync each cost 2-3 ms apiece here
        (4.3 s for 2,000) and more on an SD card. Replays are skipped; a gap
        raises SequenceGap before anything is written.
        """
        for sequence, _ in deltas:
            _check_sequence(sequence, self.directory)
        with self._write_lock:
            self._check_open()
            frames, last = [], self._sequence
            for sequence, entries in deltas:
                if sequence <= last:
                    logger.debug("%s: delta %d already applied (at %d), ignored", self.directory, sequence, last)
                    continue
                if sequence != last + 1:
                    raise SequenceGap(f"{self.directory}: delta {sequence} does not follow {last}; a snapshot is needed", last + 1, sequence)
                frames.append((sequence, _encode_entries(entries, self._log.path)[2]))
                last = sequence
            if not frames:
                return
            self._log.append_frames(frames)
            for _, payload in frames:
                self._absorb(payload)
            self._sequence = last
            self._maybe_start_compaction()

    def revoke_local(self, entries: Iterable[tuple[bytes, int]]) -> None:
        """Revoke tickets at this gate (staff, offline handheld), durably.

        Kept in ``local.log``, apart from hub data: deltas and snapshots never
        remove them, only ``prune_expired`` once their expiry has passed.
        Pass NEVER_EXPIRES when the ticket's expiry is unknown.
        """
        with self._write_lock:
            self._check_open()
            keys, expiries, payload = _encode_entries(entries, self._local_log.path)
            self._local_log.append(0, payload)
            self._remember_local(keys, expiries)

    def replace_with_snapshot(self, sequence: int, entries: Iterable[tuple[bytes, int]]) -> None:
        """Replace all hub entries by a snapshot as of ``sequence`` (catch-up after a gap)."""
        _check_sequence(sequence, self.directory)
        chunks: list[np.ndarray] = []
        pending = iter(entries)
        while batch := list(itertools.islice(pending, SNAPSHOT_BATCH)):  # bounds the Python objects alive at once
            chunks.append(np.frombuffer(_encode_entries(batch, self._base_path, len(chunks) * SNAPSHOT_BATCH)[2], RECORD_DTYPE))
        self.replace_with_snapshot_records(sequence, np.concatenate(chunks) if chunks else np.empty(0, RECORD_DTYPE))

    def replace_with_snapshot_records(self, sequence: int, records: np.ndarray) -> None:
        """As ``replace_with_snapshot``, from records already hashed (``RECORD_DTYPE``, any order).

        Atomic: a crash leaves the old contents or the new. ``sequence``
        becomes the current one even when lower (a hub restored from backup:
        ``SequenceTracker.reset`` does the same); replay protection for
        snapshots belongs to the per-gate stream that carried it. Local
        revocations are kept. Blocks other changes (not lookups) while the
        new base is written.
        """
        _check_sequence(sequence, self.directory)
        try:  # numpy turns the big-endian expiry native in concatenate(); any safe equivalent will do
            records = records.astype(RECORD_DTYPE, casting="safe", copy=False)
        except TypeError:
            records = np.empty(0)
        if records.dtype != RECORD_DTYPE or records.ndim != 1:
            raise InvalidEntry(f"{self._base_path}: snapshot records must be a 1-d array of {RECORD_DTYPE}, got {records.dtype} x {records.shape}")
        with self._compaction_lock, self._write_lock:
            self._check_open()
            if sequence < self._sequence:
                logger.warning("%s: snapshot %d moves the sequence back from %d", self.directory, sequence, self._sequence)
            generation = self._log_generation + 1
            write_snapshot(self._base_path, records, sequence, generation)
            base = SortedIds(self._base_path)
            self._rotate_log(generation)
            self._pending, self._pending_count = [], 0
            self._view, self._sequence = (base, set(), set()), sequence
            self._remove_logs_below(generation)
            logger.info("%s: snapshot %d installed, %d entries", self.directory, sequence, base.count)

    def compact(self) -> None:
        """Merge the overlay into a new base file; lookups and deltas go on meanwhile."""
        self._compact(None)

    def prune_expired(self, now: int) -> int:
        """Compact, dropping hub and local entries whose expiry is at or before ``now``.

        ``now`` must be trusted time (a clock set forward would un-revoke
        tickets early). Returns how many entries were dropped.
        """
        dropped = self._compact(now)
        with self._write_lock:
            self._check_open()
            kept = {key: expiry for key, expiry in self._local.items() if expiry > now}
            if len(kept) < len(self._local):
                payload = b"".join(key + expiry.to_bytes(4, "big") for key, expiry in kept.items())
                new_log = FrameLog.create(self._local_log.path, 0, payload)
                self._local_log.close()
                self._local_log, dropped, self._local = new_log, dropped + len(self._local) - len(kept), kept
        return dropped

    def _compact(self, now: int | None) -> int:
        with self._compaction_lock:
            with self._write_lock:
                self._check_open()
                base, _, overlay = self._view
                if not self._pending and now is None:
                    return 0
                generation = self._log_generation + 1
                self._rotate_log(generation)  # later deltas go to the new log, which the new base will not cover
                pending, self._pending, self._pending_count = self._pending, [], 0
                self._view, sequence = (base, overlay, set()), self._sequence
            assert isinstance(base, SortedIds)
            try:
                added = sort_unique(np.concatenate(pending)) if pending else np.empty(0, RECORD_DTYPE)
                header, dropped = write_merged(self._base_path, base, added, sequence, generation, now)
                new_base = SortedIds(self._base_path)
            except BaseException:
                with self._write_lock:  # keep serving from the old base; the logs still hold everything
                    _, frozen, current = self._view
                    current.update(frozen)
                    self._view = (base, set(), current)
                    self._pending = pending + self._pending
                    self._pending_count += sum(len(records) for records in pending)
                raise
            with self._write_lock:
                current = self._view[2]
                if now is not None and self._pending:  # a key pruned from the base may have been renewed meanwhile
                    later = b"".join(records.tobytes() for records in self._pending)
                    _, in_new = new_base.search(np.frombuffer(later, RECORD_DTYPE)["key"])
                    current.update(key for key, known in zip(keys_of(later), in_new.tolist()) if not known)
                self._view = (new_base, set(), current)
                self._remove_logs_below(generation)
            logger.info("%s: compacted to %d entries (generation %d, %d expired dropped)", self.directory, header.count, generation, dropped)
            return dropped

    def _rotate_log(self, generation: int) -> None:
        new_log = FrameLog.create(_log_path(self.directory, generation), generation)
        self._log.close()
        self._log, self._log_generation = new_log, generation

    def _remove_logs_below(self, generation: int) -> None:
        for match in map(LOG_NAME.fullmatch, os.listdir(self.directory)):
            if match and int(match.group(1)) < generation:
                (self.directory / match.group(0)).unlink(missing_ok=True)

    def _maybe_start_compaction(self) -> None:
        """Called with the write lock held."""
        if not self._auto_compact or self._closing or self._pending_count < self._next_compaction_at:
            return
        if self._compactor is not None and self._compactor.is_alive():
            return
        self._compactor = threading.Thread(target=self._compact_in_background, name=f"compact {self.directory}", daemon=True)
        self._compactor.start()

    def _compact_in_background(self) -> None:
        try:
            self._compact(None)
            self._next_compaction_at = self._overlay_limit
        except (OSError, RevocationStoreError):
            self._next_compaction_at = self._pending_count + max(1, self._overlay_limit // 4)
            logger.exception("%s: background compaction failed; retrying after %d more records", self.directory, self._next_compaction_at)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"{self.directory}: revocation set used after close()")

    # ---- life cycle -----------------------------------------------------------------

    def close(self) -> None:
        """Wait for a running compaction, release files and the directory lock. Idempotent."""
        with self._write_lock:
            self._closing = True
            compactor = self._compactor
        if compactor is not None:
            compactor.join()
        with self._compaction_lock, self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._log.close()
            self._local_log.close()
            self._view, self._local = (_ClosedBase(self.directory), set(), set()), {}
            os.close(self._lock_fd)

    def __enter__(self) -> RevocationSet:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()
