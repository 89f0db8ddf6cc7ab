"""The ID check of a real-name ticket: wait for an ID from the gate's readers, bind it, decide.

The daemon scans a ticket; when the engine answers ``holder_check_required`` the daemon
shows "ID check" and calls ``IdCheck.complete``, which waits (feeding the watchdog) for an
ID laid on a card reader or typed on the keypad, computes the binding (one Argon2id, in
the daemon's thread and outside the validator's lock) and decides the ticket again with it.
The outcome is the only thing recorded; the ID number lives in memory only, from the
reader to the binding, and the reader threads never log it (``redact_id_reader_logs``).

Thread ownership: ``start`` starts one thread per reader, ``stop`` stops and joins them;
a reader thread that ends by itself is logged as an error and shows in ``health``. A
stop requested while a check waits takes effect when that check ends (at most
``timeout_seconds``): the decision thread is the daemon's, and the visitor gets an answer.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gate.rules import Direction
from gate.scanner.base import Scan, Scanner, ScannerHealth
from gate.validator import ScanResult, Validator
from protocol.holder import HolderIdError

from .policy import present_holder, unknown_binding_version
from .redact import redact_id_reader_logs
from .settings import IdCheckSettings

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # how often a waiting check feeds the watchdog and notices a stop


@dataclass(frozen=True)
class IdRead:
    """An ID as a reader gave it; ``number`` is kept out of every repr and log."""

    source: str
    read_at: float  # time.monotonic()
    number: str = field(repr=False)


class IdInbox:
    """The latest ID read, held in memory until a check takes it, a newer read replaces it
    or it is too old to count for any check (``forget_older_than``)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._latest: IdRead | None = None

    def put(self, read: IdRead) -> None:
        with self._changed:
            self._latest = read
            self._changed.notify_all()

    def holding(self) -> bool:
        with self._changed:
            return self._latest is not None

    def forget_older_than(self, cutoff: float) -> None:
        """Drop the held read if it was read before ``cutoff`` (monotonic): no check can use it."""
        with self._changed:
            if self._latest is not None and self._latest.read_at < cutoff:
                self._latest = None
                self._changed.notify_all()

    def take(self, since: float, deadline: float, tick: Callable[[], None]) -> IdRead | None:
        """The first ID read at or after ``since`` (monotonic), waiting until ``deadline``;
        calls ``tick`` at least every TICK_SECONDS while it waits. Older reads are discarded."""
        with self._changed:
            while True:
                latest, self._latest = self._latest, None
                if latest is not None and latest.read_at >= since:
                    return latest
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(min(TICK_SECONDS, remaining))
                if self._latest is None:
                    tick()


class IdCheck:
    """Completes ID checks for the daemon; readers are scanners whose scans are ID numbers."""

    def __init__(self, validator: Validator, readers: Sequence[Scanner], settings: IdCheckSettings) -> None:
        self._validator, self._readers, self._settings = validator, list(readers), settings
        self._inbox = IdInbox()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        redact_id_reader_logs(reader.source for reader in self._readers)

    def start(self) -> None:
        for reader in self._readers:
            thread = threading.Thread(target=self._read, args=(reader,), name=f"id reader {reader.source}", daemon=True)
            thread.start()
            self._threads.append(thread)
        janitor = threading.Thread(target=self._forget_stale_reads, name="id inbox janitor", daemon=True)
        janitor.start()
        self._threads.append(janitor)
        log.info("id check: %d reader(s): %s; %.0f s to present an ID", len(self._readers), ", ".join(r.source for r in self._readers), self._settings.timeout_seconds)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for reader in self._readers:
            reader.close()

    def health(self) -> list[ScannerHealth]:
        return [reader.health() for reader in self._readers]

    def complete(self, scan: Scan, direction: Direction, first: ScanResult, tick: Callable[[], None]) -> ScanResult:
        """Wait for the holder's ID and decide ``scan`` again with it; ``first`` (the
        holder_check_required refusal) stands when no usable ID comes in time."""
        claims = first.decision.ticket
        assert claims is not None, "holder_check_required is decided on a verified ticket"
        unknown = unknown_binding_version(claims)
        if unknown is not None:
            # Nothing this gate reads could be checked: say so at once instead of asking for a card.
            log.warning("id check ticket=%s: %s; update this gate's software, check the ID by hand", claims.ticket_id_hex, unknown)
            return with_detail(first, f"{unknown}: check the ID by hand")
        deadline = time.monotonic() + self._settings.timeout_seconds
        since = scan.read_at - self._settings.before_scan_seconds
        while not self._stop.is_set():
            read = self._inbox.take(since, deadline, tick)
            if read is None:
                log.info("id check ticket=%s: no ID presented within %.0f s", claims.ticket_id_hex, self._settings.timeout_seconds)
                return with_detail(first, f"no ID presented within {self._settings.timeout_seconds:.0f} s; the ticket is not used, scan it again")
            try:
                presented = present_holder(claims, read.number, self._settings.site_secret, self._settings.retired_secrets)
            except HolderIdError as error:
                log.info("id check ticket=%s: %s gave something else than an ID (%s); waiting for another", claims.ticket_id_hex, read.source, error)
                continue
            log.debug("id check ticket=%s: binding computed in %.0f ms after the read", claims.ticket_id_hex, (time.monotonic() - read.read_at) * 1000)
            return self._validator.scan(scan.text, direction, presented)
        return with_detail(first, "the gate is stopping")

    def _forget_stale_reads(self) -> None:
        """A card laid on the reader with no ticket waiting must not stay in memory: drop any
        read older than ``before_scan_seconds`` (checked every TICK_SECONDS)."""
        try:
            while not self._stop.wait(TICK_SECONDS):
                self._inbox.forget_older_than(time.monotonic() - self._settings.before_scan_seconds)
        finally:
            if not self._stop.is_set():
                log.error("id check: the thread dropping stale ID reads stopped; reads now wait for the next check")

    def holding_an_id(self) -> bool:
        """Whether an ID read is held in memory now (for tests and diagnostics; never the ID)."""
        return self._inbox.holding()

    def _read(self, reader: Scanner) -> None:
        try:
            for scan in reader.scans(self._stop):
                self._inbox.put(IdRead(scan.source, scan.read_at, scan.text))
        finally:
            if not self._stop.is_set():
                log.error("id reader %s stopped reading: %s", reader.source, reader.health().detail)


def with_detail(result: ScanResult, detail: str) -> ScanResult:
    """The refusal as recorded (the event says holder_check_required), shown with why it stands
    (the daemon's check here, the handheld's typed check in terminal.py)."""
    return dataclasses.replace(result, decision=dataclasses.replace(result.decision, detail=detail))
