"""The camera scanner: frames in, each code reported once, a vanished camera reopened.

Decoding happens on the scanner's own thread, frame by frame; a live camera
keeps one buffered frame (frames.py), so a slow decode drops stale frames
instead of answering the visitor late.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from .backoff import Backoff
from .base import DeviceScanner, Reading
from .decoders import Decoder, make_decoder
from .errors import ScannerUnavailable
from .frames import FramePipeline, FrameSource, describe_source, is_live, open_frame_source
from .settings import CameraSettings

log = logging.getLogger(__name__)

FRAME_GAP_SECONDS = 0.04  # media-clock step between the last frame of one play of a file and the first of the next


class CameraScanner(DeviceScanner):
    """Reads a CameraSettings source; see DeviceScanner for the thread and stop contract.

    Dedupe runs on the media clock for files (their position, continued
    across loops) and on the monotonic clock for live cameras, so a video
    file yields the same scans however fast this machine decodes it.
    """

    def __init__(self, settings: CameraSettings, decoder: Decoder | None = None) -> None:
        super().__init__(
            describe_source(settings.source),
            settings.dedupe_seconds,
            Backoff(settings.reopen_backoff, settings.reopen_backoff_max),
        )
        self.settings = settings
        self.pipeline = FramePipeline(decoder or make_decoder(settings.decoder), settings.roi, settings.downscale)
        if is_live(settings.source) or settings.on_end == "auto":
            self._on_end = "reopen" if is_live(settings.source) else "stop"
        else:
            self._on_end = settings.on_end
        self._frames: FrameSource | None = None
        self._clock_offset = 0.0  # media clock where the current play of a file started
        self._last_clock: float | None = None

    def _open(self) -> None:
        self._frames = open_frame_source(self.settings)
        if self._last_clock is not None:
            self._clock_offset = self._last_clock + FRAME_GAP_SECONDS

    def _release(self) -> None:
        if self._frames is not None:
            self._frames.release()
            self._frames = None

    def _readings(self, stop: threading.Event) -> Iterator[Reading]:
        frames = self._frames
        assert frames is not None, "_readings runs only after _open succeeded"
        while not stop.is_set():
            frame = frames.read()
            if frame is None:
                frames = self._handle_end(frames)
                if frames is None:
                    return
                continue
            clock = time.monotonic() if frame.media_time is None else self._clock_offset + frame.media_time
            self._last_clock = clock
            decoded = self.pipeline.decode(frame.image)
            for text in decoded.texts:
                yield Reading(text, clock, frame.media_time, decoded.seconds)

    def _handle_end(self, frames: FrameSource) -> FrameSource | None:
        """The source ran dry: the next source to read, None to end, or raise to reopen with backoff."""
        if not frames.finite:
            raise ScannerUnavailable(f"{self.source}: no frame (camera unplugged, or stream stalled for {self.settings.stream_timeout} s)")
        if self._on_end == "reopen":
            raise ScannerUnavailable(f"{self.source}: end of file")
        if self._on_end == "stop":
            return None
        log.debug("%s: end of file, playing again", self.source)
        self._release()
        self._open()
        return self._frames
