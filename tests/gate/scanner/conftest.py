"""Fixtures for the scanner tests: real ticket texts, real QR images and videos, a scanner thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from gate.scanner import Scan, Scanner
from testkit.synthetic_frames import FrameConditions, camera_frame

REPO_ROOT = Path(__file__).resolve().parents[3]
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "qr-photos"
WAIT = 10.0  # generous upper bound for anything another thread must do; never a sleep


@pytest.fixture
def tickets(mint: Callable[..., str]) -> list[str]:
    """Three distinct signed ticket texts, as the sales system mints them."""
    return [mint() for _ in range(3)]


def write_video(path: Path, texts: Sequence[str | None], fps: float = 10.0, conditions: FrameConditions | None = None, seed: int = 1) -> Path:
    """An MJPG .avi with one synthetic gate-camera frame per entry (None = no code in view)."""
    conditions = conditions or FrameConditions(tilt_degrees=10.0, blur_sigma=0.6, noise_sigma=3.0)
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (conditions.width, conditions.height))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for text in texts:
        writer.write(camera_frame(text, conditions, rng))
    writer.release()
    return path


class ScannerThread:
    """Runs ``scanner.scans(stop)`` on its own thread, as the gate daemon will, into a queue."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner
        self.stop = threading.Event()
        self.scans: queue.Queue[Scan] = queue.Queue()
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._joined = False
        self._thread = threading.Thread(target=self._run, name=f"scanner {scanner.source}", daemon=True)

    def _run(self) -> None:
        try:
            for scan in self.scanner.scans(self.stop):
                self.scans.put(scan)
        except BaseException as error:  # handed to the test thread, which re-raises it
            self.error = error
        finally:
            self.finished.set()

    def next_text(self, timeout: float = WAIT) -> str:
        return self.scans.get(timeout=timeout).text

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.scans.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def stop_and_join(self, within: float = 0.5) -> None:
        """Stop it as the daemon would; fails when it takes longer than ``within`` or it raised."""
        if self._joined:
            return
        self._joined = True
        self.stop.set()
        self._thread.join(within)
        assert not self._thread.is_alive(), f"{self.scanner.source} did not stop within {within} s"
        self.scanner.close()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> ScannerThread:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_and_join()


@pytest.fixture
def run_scanner() -> Iterator[Callable[[Scanner], ScannerThread]]:
    """run_scanner(scanner) -> a started ScannerThread, stopped (and checked) at the end of the test."""
    started: list[ScannerThread] = []

    def _start(scanner: Scanner) -> ScannerThread:
        runner = ScannerThread(scanner).__enter__()
        started.append(runner)
        return runner

    yield _start
    for runner in started:
        runner.stop_and_join()
