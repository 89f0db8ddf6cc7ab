"""``lungta scan``: run the camera decode path on images or a video, one JSON line per code.

For operators checking a camera set-up (point it at a ticket, record a few
seconds, see what the gate would read and how long decoding takes) and for
tests. It runs exactly the gate's code: FramePipeline for stills, the
CameraScanner (with its dedupe) for video; OpenCV is loaded only to decode.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from gate.scanner.errors import ScannerError
from gate.scanner.settings import DECODERS, DEFAULT_DECODER, DEFAULT_DEDUPE_SECONDS, CameraSettings

from .errors import CommandError
from .output import emit

EXIT_NOTHING_FOUND = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    scan = commands.add_parser(
        "scan",
        help="decode QR codes in images or a video as a gate camera would",
        description=(
            "Decode QR codes with the gate's camera path; prints one JSON object per code found: "
            "text, time (seconds into a video file; null for images and live cameras), decode_ms (camera frame to text), source. "
            "Exit status 1 when no code was found at all."
        ),
    )
    inputs = scan.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--image", nargs="+", type=Path, metavar="FILE", help="still images (PNG, JPEG, WebP...)")
    inputs.add_argument("--video", metavar="FILE", help="a video file; also a camera (/dev/video0) or stream URL, until Ctrl-C")
    scan.add_argument("--decoder", choices=DECODERS, default=DEFAULT_DECODER, help=f"QR decoder (default {DEFAULT_DECODER})")
    scan.add_argument("--roi", metavar="X,Y,W,H", help="decode only this region of each frame, in pixels")
    scan.add_argument("--downscale", type=float, default=1.0, metavar="F", help="shrink frames by F (0 < F <= 1) before decoding")
    scan.add_argument("--dedupe-seconds", type=float, default=DEFAULT_DEDUPE_SECONDS, metavar="S", help="video: report a code again only after S seconds unseen (default %(default)s)")
    scan.set_defaults(run=run_scan)


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    try:
        x, y, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise CommandError(f"--roi: {text!r} is not X,Y,W,H (four integers)") from None
    return (x, y, width, height)


def run_scan(args: argparse.Namespace) -> int:
    try:
        settings = CameraSettings(
            source=args.video or "",
            roi=parse_roi(args.roi),
            downscale=args.downscale,
            decoder=args.decoder,
            dedupe_seconds=args.dedupe_seconds,
        )
        found = scan_images(args.image, settings) if args.image else scan_video(settings)
    except ScannerError as error:
        raise CommandError(str(error)) from None
    return 0 if found else EXIT_NOTHING_FOUND


def scan_images(paths: list[Path], settings: CameraSettings) -> int:
    """Every code in every image, in order; each image is decoded on its own (no dedupe)."""
    import cv2

    from gate.scanner.decoders import make_decoder
    from gate.scanner.frames import FramePipeline
    pipeline = FramePipeline(make_decoder(settings.decoder), settings.roi, settings.downscale)
    found = 0
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CommandError(f"--image {path}: not a readable image")
        decoded = pipeline.decode(image)
        for text in decoded.texts:
            emit({"text": text, "time": None, "decode_ms": round(decoded.seconds * 1000, 3), "source": f"image:{path}"})
            found += 1
    return found


def scan_video(settings: CameraSettings) -> int:
    """Each code once (the gate's dedupe), with its position in the video."""
    from gate.scanner.camera import CameraScanner
    from gate.scanner.frames import open_frame_source
    open_frame_source(settings).release()  # fail now with a clear message rather than retry a typo forever
    scanner = CameraScanner(settings)
    found = 0
    stop = threading.Event()
    try:
        for scan, reading in scanner.readings(stop):
            position = reading.media_time
            emit(
                {
                    "text": scan.text,
                    "time": round(position, 3) if position is not None else None,
                    "decode_ms": round(reading.decode_seconds * 1000, 3),
                    "source": scan.source,
                }
            )
            found += 1
    except KeyboardInterrupt:
        stop.set()
    finally:
        scanner.close()
    return found
