"""The camera scanner over real OpenCV sources: video files, image folders, a camera that vanishes."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from gate.scanner import CameraSettings, SettingsError, open_scanner
from gate.scanner.camera import CameraScanner
from gate.scanner.frames import describe_source
from testkit.synthetic_frames import FrameConditions
from protocol.qr import write_ticket_png

from .conftest import WAIT, write_video

FPS = 10.0


def scan_all(settings: CameraSettings) -> list[tuple[str, float | None]]:
    """Every scan of a finite source, with its position in the file, read on this thread."""
    scanner = CameraScanner(settings)
    try:
        return [(scan.text, reading.media_time) for scan, reading in scanner.readings(threading.Event())]
    finally:
        scanner.close()


def test_video_reports_each_ticket_once_however_many_frames_show_it(tmp_path: Path, tickets: list[str]) -> None:
    a, b, c = tickets
    frames = [a] * 8 + [None] * 5 + [b] * 8 + [None] * 3 + [c] * 6
    video = write_video(tmp_path / "gate.avi", frames, FPS)
    scans = scan_all(CameraSettings(source=str(video)))
    assert [text for text, _ in scans] == [a, b, c]
    assert [round(position or 0, 1) for _, position in scans] == [0.0, 1.3, 2.4]


def test_ticket_shown_again_after_the_dedupe_window_is_reported_again(tmp_path: Path, tickets: list[str]) -> None:
    a = tickets[0]
    video = write_video(tmp_path / "again.avi", [a] * 5 + [None] * 30 + [a] * 5, FPS)
    assert [text for text, _ in scan_all(CameraSettings(source=str(video), dedupe_seconds=2.0))] == [a, a]
    assert [text for text, _ in scan_all(CameraSettings(source=str(video), dedupe_seconds=5.0))] == [a]


def test_dark_mode_phone_in_a_video_is_read(tmp_path: Path, tickets: list[str]) -> None:
    dark = FrameConditions(phone_screen=True, dark_mode=True, tilt_degrees=12, blur_sigma=0.5)
    video = write_video(tmp_path / "dark.avi", [None] * 2 + [tickets[0]] * 4, FPS, conditions=dark)
    assert [text for text, _ in scan_all(CameraSettings(source=str(video)))] == [tickets[0]]


def test_image_folder_plays_as_a_camera_in_name_order_skipping_unreadable_files(tmp_path: Path, tickets: list[str]) -> None:
    write_ticket_png(tickets[1], tmp_path / "visitor-2.png")
    write_ticket_png(tickets[0], tmp_path / "visitor-1.png")
    (tmp_path / "visitor-3.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    scanner = open_scanner(CameraSettings(source=str(tmp_path)))
    assert [scan.text for scan in scanner.scans(threading.Event())] == tickets[:2]
    assert scanner.health().detail == f"camera:{tmp_path}: end of input"


def test_camera_that_is_missing_is_unhealthy_then_opens_when_it_appears_and_reopens_after_it_fails(run_scanner, tmp_path: Path, tickets: list[str]) -> None:
    source = tmp_path / "camera.avi"
    settings = CameraSettings(source=str(source), on_end="reopen", reopen_backoff=0.02, reopen_backoff_max=0.1)
    scanner = open_scanner(settings)
    runner = run_scanner(scanner)
    missing = scanner.wait_for_health(lambda h: not h.ok and str(source) in h.detail, WAIT)
    assert missing is not None

    staging = write_video(tmp_path / "staging.avi", [tickets[0]] * 3 + [None] * 2, FPS)
    os.replace(staging, source)  # the camera appears, whole
    scan = runner.scans.get(timeout=WAIT)
    assert (scan.text, scan.source) == (tickets[0], f"camera:{source}")
    # End of file counts as the camera failing: it is reopened with backoff, and counted.
    assert scanner.wait_for_health(lambda h: h.reopen_count >= 1, WAIT)


def test_looping_video_stops_promptly_when_asked(run_scanner, tmp_path: Path, tickets: list[str]) -> None:
    video = write_video(tmp_path / "demo.avi", [tickets[0]] * 2 + [None] * 20, FPS)
    runner = run_scanner(open_scanner(CameraSettings(source=str(video), on_end="loop")))
    assert runner.next_text() == tickets[0]
    runner.stop_and_join(within=0.5)
    assert runner.scanner.health().detail.endswith("stopped")


def test_scan_source_names_the_device_and_config_values_are_normalised() -> None:
    assert describe_source(0) == "camera:/dev/video0"
    assert CameraSettings(source="2").source == 2  # a device index written as text in gate.toml
    toml_array: Any = [10, 20, 300, 200]
    assert CameraSettings(roi=toml_array).roi == (10, 20, 300, 200)
    assert describe_source("rtsp://10.0.0.5/stream1") == "camera:rtsp://10.0.0.5/stream1"


@pytest.mark.parametrize(
    ("field", "value"),
    [("decoder", "opencv"), ("downscale", 1.5), ("roi", (0, 0, 0, 10)), ("on_end", "rewind"), ("dedupe_seconds", -1.0), ("reopen_backoff", 0.0), ("fourcc", "MJPEG")],
)
def test_bad_camera_settings_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(SettingsError, match=field):
        CameraSettings(**{field: value})
