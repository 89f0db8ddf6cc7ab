"""What every scanner yields and reports, and the loop they all share.

A scanner is driven by one thread of the gate daemon: ``scans(stop)`` blocks,
yields each new code once, survives its device vanishing (reopening it with
backoff) and returns soon after ``stop`` is set. ``health()`` may be called
from any other thread at any time.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .backoff import Backoff
from .dedupe import Deduplicator
from .errors import ScannerUnavailable

log = logging.getLogger(__name__)

STABLE_SECONDS = 5.0  # a device open this long counts as working again: its backoff restarts


@dataclass(frozen=True)
class Scan:
    """One code read once: ``text`` exactly as the decoder or scanner gave it.

    ``source`` names the reader ("camera:/dev/video0", "serial:/dev/ttyUSB0",
    "hid:/dev/input/event3"); ``read_at`` is ``time.monotonic()`` when it was read,
    so latency can be measured across threads without trusting the wall clock.
    """

    text: str
    source: str
    read_at: float


@dataclass(frozen=True)
class ScannerHealth:
    """A snapshot for heartbeats and the hub dashboard; times are ``time.monotonic()``."""

    source: str
    ok: bool
    detail: str
    reopen_count: int = 0  # times the device was reopened after it failed
    last_scan_at: float | None = None
    scan_count: int = 0  # scans reported, after dedupe
    rejected_count: int = 0  # inputs discarded as noise, over-long or undecodable
    changed_at: float = 0.0  # when ``ok`` last changed


class Scanner(Protocol):
    """The interface the gate daemon programs against, whatever the hardware."""

    source: str

    def scans(self, stop: threading.Event) -> Iterator[Scan]: ...

    def health(self) -> ScannerHealth: ...

    def wait_for_health(self, predicate: Callable[[ScannerHealth], bool], timeout: float) -> ScannerHealth | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Reading:
    """A code as a device loop produced it, before dedupe.

    ``clock`` is the time dedupe judges by: monotonic for live devices, the
    media position for video files (so a file gives the same scans however
    fast it is decoded). ``media_time`` is the position in a file, else None.
    """

    text: str
    clock: float
    media_time: float | None = None
    decode_seconds: float = 0.0


class HealthTracker:
    """Thread-safe holder of the current ScannerHealth; the scanner thread writes, anyone reads or waits."""

    def __init__(self, source: str) -> None:
        self._changed = threading.Condition()
        self._health = ScannerHealth(source=source, ok=False, detail="not opened yet", changed_at=time.monotonic())

    def snapshot(self) -> ScannerHealth:
        with self._changed:
            return self._health

    def opened(self, reopened: bool) -> None:
        with self._changed:
            self._set(ok=True, detail=f"{self._health.source}: open", reopen_count=self._health.reopen_count + int(reopened))

    def failed(self, detail: str) -> None:
        with self._changed:
            self._set(ok=False, detail=detail)

    def scanned(self, at: float) -> None:
        with self._changed:
            self._set(last_scan_at=at, scan_count=self._health.scan_count + 1)

    def rejected(self) -> None:
        with self._changed:
            self._set(rejected_count=self._health.rejected_count + 1)

    def wait_for(self, predicate: Callable[[ScannerHealth], bool], timeout: float) -> ScannerHealth | None:
        """The first snapshot satisfying ``predicate`` within ``timeout`` seconds, else None."""
        with self._changed:
            if self._changed.wait_for(lambda: predicate(self._health), timeout):
                return self._health
            return None

    def _set(self, **fields: Any) -> None:
        if "ok" in fields and fields["ok"] != self._health.ok:
            fields["changed_at"] = time.monotonic()
        self._health = replace(self._health, **fields)
        self._changed.notify_all()


class DeviceScanner(ABC):
    """The open / read / reopen-with-backoff loop shared by camera, serial and HID scanners.

    Subclasses open and release their device and turn its input into
    Readings; a lost device is signalled by raising ScannerUnavailable, and
    a finite source (a video file) ends by returning from ``_readings``.
    """

    def __init__(self, source: str, dedupe_seconds: float, backoff: Backoff) -> None:
        self.source = source
        self._dedupe = Deduplicator(dedupe_seconds)
        self._backoff = backoff
        self._tracker = HealthTracker(source)
        self._opened_before = False

    @abstractmethod
    def _open(self) -> None:
        """Open the device; raise ScannerUnavailable naming it when that fails."""

    @abstractmethod
    def _readings(self, stop: threading.Event) -> Iterator[Reading]:
        """Read until ``stop`` is set, the device fails (raise) or a finite source ends (return)."""

    @abstractmethod
    def _release(self) -> None:
        """Close the device; must be safe to call when it is not open."""

    def health(self) -> ScannerHealth:
        return self._tracker.snapshot()

    def wait_for_health(self, predicate: Callable[[ScannerHealth], bool], timeout: float) -> ScannerHealth | None:
        """Block until health satisfies ``predicate``: for start-up checks and tests, not for polling."""
        return self._tracker.wait_for(predicate, timeout)

    def close(self) -> None:
        """Release the device. Call it once the ``scans`` generator has returned (same thread or joined)."""
        self._release()

    def scans(self, stop: threading.Event) -> Iterator[Scan]:
        for scan, _ in self.readings(stop):
            yield scan

    def readings(self, stop: threading.Event) -> Iterator[tuple[Scan, Reading]]:
        """Each new scan with the Reading behind it (decode time, media position)."""
        try:
            while not stop.is_set():
                if not self._open_or_wait(stop):
                    continue
                opened_at = time.monotonic()
                try:
                    for reading in self._readings(stop):
                        if self._dedupe.should_report(reading.text, reading.clock):
                            scan = Scan(reading.text, self.source, time.monotonic())
                            self._tracker.scanned(scan.read_at)
                            yield scan, reading
                except ScannerUnavailable as error:
                    self._release()
                    if time.monotonic() - opened_at > STABLE_SECONDS:
                        self._backoff.reset()  # it worked for a while: retry soon, but a flapping device backs off
                    self._wait_after_failure(str(error), stop)
                    continue
                if not stop.is_set():
                    self._tracker.failed(f"{self.source}: end of input")
                    return
        except Exception as exc:  # not caught: the supervisor restarts the reader; health must not stay "ok" meanwhile
            self._tracker.failed(f"{self.source}: reader crashed: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._release()
            if stop.is_set():
                self._tracker.failed(f"{self.source}: stopped")

    def _open_or_wait(self, stop: threading.Event) -> bool:
        try:
            self._open()
        except ScannerUnavailable as error:
            self._wait_after_failure(str(error), stop)
            return False
        self._tracker.opened(reopened=self._opened_before)
        self._opened_before = True
        log.info("%s: open", self.source)
        return True

    def _wait_after_failure(self, detail: str, stop: threading.Event) -> None:
        delay = self._backoff.next_delay()
        # One warning per new problem; a camera missing all night repeats only at debug level.
        level = logging.DEBUG if self._tracker.snapshot().detail == detail else logging.WARNING
        log.log(level, "%s; retrying in %.2f s", detail, delay)
        self._tracker.failed(detail)
        stop.wait(delay)
