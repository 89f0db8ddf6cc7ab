"""Snapshots built beside the hub's worker, so one gate catching up never silences the hub for the others.

A full snapshot of a million revocations takes the hub seconds (the query,
then CBOR chunking). Built on the worker, it held up every other gate's pong
for that long, past their hub timeout, and the whole site fell back to its
offline policy (docs/hub-protocol.md section 6.1). The worker now only hands
the request here (``request``, which never blocks on a build).

- **Threads**: one per site stream (revocations, used), each with its own
  SQLite connection (hub/sqlite_snapshots.py): at most one build per stream
  at a time, and the two streams never wait for each other's build.
- **Consistent**: a build reads ``as_of`` and the entries in one read
  transaction, so it is the stream's state as of exactly that seq while the
  worker and ``lungta hub revoke`` go on committing.
- **Shared**: a request joins the running build of its stream when that
  started less than ``JOIN_S`` ago (its ``as_of`` is that fresh), else it
  waits for the next build, which every gate asking meanwhile shares. A gate
  already waiting or in the running build is not added again (its retries
  while a long build runs cost nothing). At most ``MAX_WAITING`` gates wait
  per stream; a request beyond is refused with a log line, and the gate asks
  again after its ``snapshot_retry_seconds``. Except after an un-revocation
  (``overtaken``, called before the gates are told to refresh): a set read
  before it still holds the ticket, so nobody joins the running build and
  its gates get the next one too.
- **Ordered**: both streams' chunks for a gate go on its one stream
  ``snapshot/<gate>``, whose seqs the gate accepts only increasing; reserving
  the seqs and publishing every chunk is one step under ``_send_lock``.
- **Supervised**: a build that fails is logged (the gates ask again) and the
  thread goes on; ``stop`` interrupts a running query.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from protocol.hub_messages import RevocationEntry, UsedMark, used_mark_map
from protocol.snapshots import snapshot_bodies
from protocol.topics import REVOCATIONS, SITE_STREAMS, snapshot_stream

from .publisher import Publisher

log = logging.getLogger(__name__)

JOIN_S = 1.0  # a request joins a build this young: its snapshot is then at most this much older than the request
MAX_WAITING = 1000  # gates waiting for the next build of one stream


class SnapshotSource(Protocol):
    """What a build reads and the seqs it reserves, on a connection of the builder's own (hub/sqlite_snapshots.py)."""

    def revocation_snapshot(self, now_s: int) -> tuple[int, list[RevocationEntry]]: ...

    def used_snapshot(self, now_ms: int, retention_ms: int) -> tuple[int, list[UsedMark]]: ...

    def next_seq(self, stream: str, count: int = 1) -> int: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SnapshotBuild:
    """One build and whom it was sent to; ``build_s`` is reading and chunking, ``send_s`` signing and publishing."""

    stream: str
    as_of: int
    entries: int
    chunks: int
    size: int
    gates: tuple[str, ...]
    build_s: float
    send_s: float


@dataclass
class _StreamState:
    """Guarded by ``SnapshotBuilder._cond``."""

    waiting: dict[str, None] = field(default_factory=dict)  # gates for the next build, in the order they asked
    running: set[str] = field(default_factory=set)
    joinable_until: float = 0.0  # monotonic time; 0 once the running build's chunks are made
    overtaken: bool = False  # an un-revocation may have come after the running build read: its gates get the next one too


class SnapshotBuilder:
    """Builds and publishes the snapshots gates ask for, on threads of its own; ``request`` is called by the worker."""

    def __init__(self, open_source: Callable[[], SnapshotSource], publisher: Publisher, chunk: int, used_retention_ms: int,
                 clock: Callable[[], float], sent: Callable[[SnapshotBuild], None], max_waiting: int = MAX_WAITING) -> None:
        """``open_source`` makes one connection per stream (``open``); ``publisher`` is used by these threads only (under ``_send_lock``);
        ``clock`` is hub time (Unix s), which decides what has expired; ``sent`` is called after each build is published."""
        self._open_source = open_source
        self._publisher = publisher
        self._chunk = chunk
        self._retention_ms = used_retention_ms
        self._clock = clock
        self._sent = sent
        self._max_waiting = max_waiting
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._streams = {stream: _StreamState() for stream in SITE_STREAMS}
        self._sources: dict[str, SnapshotSource] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def open(self) -> None:
        """Open a connection per stream; raises ``HubStoreError`` naming the file (``start`` opens them if this was not called)."""
        try:
            for stream in SITE_STREAMS:
                if stream not in self._sources:
                    self._sources[stream] = self._open_source()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connections of a builder that never started (started ones are closed by their threads)."""
        for source in self._sources.values():
            source.close()
        self._sources.clear()

    def start(self) -> None:
        """Start the threads (opening the connections first if ``open`` was not called)."""
        self.open()
        for stream in SITE_STREAMS:
            thread = threading.Thread(target=self._serve, args=(stream,), name=f"hub-snapshots-{stream}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking builds; a running query is interrupted, a publishing build stops between chunks."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for source in self._sources.values():
            source.interrupt()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("snapshot thread %s did not stop within %.0f s", thread.name, timeout)

    def request(self, gate: str, stream: str) -> bool:
        """Queue ``gate`` for a snapshot of ``stream``; False when refused (too many waiting). Never blocks on a build."""
        with self._cond:
            state = self._streams[stream]
            if gate in state.waiting or gate in state.running:
                return True
            if time.monotonic() < state.joinable_until:
                state.running.add(gate)
                return True
            if len(state.waiting) >= self._max_waiting:
                log.warning("snapshot request of gate %s for %s refused: %d gates already wait for the next build", gate, stream, len(state.waiting))
                return False
            state.waiting[gate] = None
            self._cond.notify_all()
            return True

    def overtaken(self, stream: str) -> None:
        """Tickets were taken out of ``stream``'s set (un-revoked) after the running build may have read it, and deltas
        only add: nobody joins that build any more, and its gates are queued for the next one, read after this call."""
        with self._cond:
            state = self._streams[stream]
            state.joinable_until = 0.0
            state.overtaken = bool(state.running)

    def _serve(self, stream: str) -> None:
        source = self._sources[stream]
        try:
            while self._next(stream):
                try:
                    self._build(source, stream)
                except Exception:  # noqa: BLE001 - last guard: a failed build is logged, its gates ask again, the thread goes on
                    if not self._stopping:
                        log.exception("building a %s snapshot failed; the gates that asked will ask again", stream)
                finally:
                    with self._cond:
                        state = self._streams[stream]
                        if state.overtaken:
                            state.waiting.update(dict.fromkeys(sorted(state.running)))
                        state.running, state.joinable_until, state.overtaken = set(), 0.0, False
        finally:
            source.close()

    def _next(self, stream: str) -> bool:
        """Wait for gates to ask, and make them the running build's; False when stopping."""
        with self._cond:
            state = self._streams[stream]
            self._cond.wait_for(lambda: self._stopping or bool(state.waiting))
            if self._stopping:
                return False
            state.running, state.waiting = set(state.waiting), {}
            state.joinable_until = time.monotonic() + JOIN_S
            return True

    def _build(self, source: SnapshotSource, stream: str) -> None:
        started = time.monotonic()
        now = self._clock()
        as_of, bodies, entries = self._bodies(source, stream, now)
        with self._cond:
            state = self._streams[stream]
            gates, state.joinable_until = tuple(sorted(state.running)), 0.0
        built = time.monotonic()
        for gate in gates:
            if self._stopping:
                return
            self._send(source, gate, bodies, int(now * 1000))
        result = SnapshotBuild(stream, as_of, entries, len(bodies), sum(len(body["data"]) for body in bodies), gates, built - started, time.monotonic() - built)
        log.info("snapshot %s as of seq %d: %d entries, %d chunks, %d bytes; built in %.2f s, sent in %.2f s to %d gate(s): %s",
                 stream, as_of, result.entries, result.chunks, result.size, result.build_s, result.send_s, len(gates), " ".join(gates))
        self._sent(result)

    def _bodies(self, source: SnapshotSource, stream: str, now: float) -> tuple[int, list[dict], int]:
        """(as_of, chunk bodies, entries) of the stream's state read in one transaction."""
        items: Sequence[object]
        if stream == REVOCATIONS:
            as_of, revoked = source.revocation_snapshot(int(now))
            items = revoked  # each entry is the (ticket_id, expires) pair the wire carries: no copy of a million
        else:
            as_of, marks = source.used_snapshot(int(now * 1000), self._retention_ms)
            items = [used_mark_map(mark) for mark in marks]
        return as_of, snapshot_bodies(stream, as_of, items, self._chunk, os.urandom(16)), len(items)

    def _send(self, source: SnapshotSource, gate: str, bodies: list[dict], at_ms: int) -> None:
        """Reserve the chunks' seqs and publish them all, as one step per gate: the other stream's chunks never interleave."""
        stream = snapshot_stream(gate)
        with self._send_lock:
            first = source.next_seq(stream, len(bodies))
            for offset, body in enumerate(bodies):
                self._publisher.publish(stream, first + offset, at_ms, body)
