"""Where camera frames come from, and how a frame becomes what the decoder sees.

A FrameSource hides OpenCV's VideoCapture (devices, streams, video files)
and a folder of still images behind ``read()``; ``FramePipeline`` does the
per-frame work (grayscale, region of interest, downscale, decode) that the
camera scanner, ``lungta scan`` and the benchmark all share, so they measure
and run the same code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .decoders import Decoder
from .errors import ScannerUnavailable, SettingsError
from .settings import CameraSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    media_time: float | None  # position in a video file, seconds; None for live sources and stills


class FrameSource(Protocol):
    finite: bool  # a file or folder: running out is the end, not a failure

    def read(self) -> Frame | None:
        """The next frame; None when a file ended or a live device failed to deliver."""
        ...

    def release(self) -> None: ...


def describe_source(source: str | int) -> str:
    """The ``source`` string of a camera's scans: "camera:/dev/video0", "camera:rtsp://..."."""
    return f"camera:/dev/video{source}" if isinstance(source, int) else f"camera:{source}"


def is_live(source: str | int) -> bool:
    return isinstance(source, int) or str(source).startswith("/dev/") or str(source).startswith(STREAM_SCHEMES)


class CaptureSource:
    """OpenCV VideoCapture: V4L2 devices, network streams and video files."""

    def __init__(self, settings: CameraSettings) -> None:
        source = settings.source
        self.finite = not is_live(source)
        if not self.finite and not isinstance(source, int) and str(source).startswith(STREAM_SCHEMES):
            timeout_ms = int(settings.stream_timeout * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            capture = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG, params)
        elif not self.finite:
            capture = cv2.VideoCapture(source, cv2.CAP_V4L2)
        else:
            capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            capture.release()
            raise ScannerUnavailable(f"{describe_source(source)}: cannot open (missing, busy, or no permission)")
        if not self.finite:
            _request_format(capture, settings)
        self._capture = capture

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        media_time = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self.finite else None
        return Frame(image, media_time)

    def release(self) -> None:
        self._capture.release()


def _request_format(capture: cv2.VideoCapture, settings: CameraSettings) -> None:
    # One buffered frame: a slow decode then skips stale frames instead of lagging behind the queue.
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    if settings.fourcc:
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*settings.fourcc))
    if settings.width:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, settings.width)
    if settings.height:
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.height)
    if settings.fps:
        capture.set(cv2.CAP_PROP_FPS, settings.fps)


class ImageFilesSource:
    """Still images played as frames, one each, in name order: a "camera" for demos and tests."""

    finite = True

    def __init__(self, paths: list[Path], name: str) -> None:
        if not paths:
            raise ScannerUnavailable(f"camera:{name}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._paths = iter(paths)

    @classmethod
    def from_folder(cls, folder: Path) -> ImageFilesSource:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return cls(paths, str(folder))

    def read(self) -> Frame | None:
        for path in self._paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return Frame(image, None)
            log.warning("camera: skipping %s: not a readable image", path)
        return None

    def release(self) -> None:
        self._paths = iter(())


def open_frame_source(settings: CameraSettings) -> FrameSource:
    """The frame source ``settings.source`` names; ScannerUnavailable if it cannot be opened."""
    source = settings.source
    if not is_live(source):
        path = Path(str(source))
        if path.is_dir():
            return ImageFilesSource.from_folder(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if not path.is_file():
                raise ScannerUnavailable(f"camera:{source}: no such image")
            return ImageFilesSource([path], str(path))
        if not path.is_file():
            raise ScannerUnavailable(f"camera:{source}: no such file")
    return CaptureSource(settings)


@dataclass(frozen=True)
class DecodedFrame:
    texts: list[str]
    seconds: float  # camera frame to decoded text: conversion, crop, scaling and the decoder call


class FramePipeline:
    """Frame (BGR or gray, as OpenCV delivers it) to decoded texts; stateless, one per thread."""

    def __init__(self, decoder: Decoder, roi: tuple[int, int, int, int] | None = None, downscale: float = 1.0) -> None:
        self.decoder = decoder
        self._roi = roi
        self._downscale = downscale

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """What the decoder sees: 8-bit gray, cropped to the ROI, scaled down."""
        if self._roi is not None:
            x, y, width, height = self._roi
            cropped = image[y : y + height, x : x + width]  # a view: no copy before the colour conversion
            if cropped.size == 0:
                raise SettingsError(f"camera.roi {self._roi} lies outside the {image.shape[1]}x{image.shape[0]} frame")
            image = cropped
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self._downscale < 1.0:
            image = cv2.resize(image, None, fx=self._downscale, fy=self._downscale, interpolation=cv2.INTER_AREA)
        return image

    def decode(self, image: np.ndarray) -> DecodedFrame:
        start = time.perf_counter()
        texts = self.decoder.decode(self.prepare(image))
        return DecodedFrame(texts, time.perf_counter() - start)
