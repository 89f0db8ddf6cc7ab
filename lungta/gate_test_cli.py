"""``lungta gate test relay|sensor|scanner|camera --config gate.toml``: a technician's checks.

Each test builds the part from the gate's own config with the builders the
daemon uses (gate/turnstile/build.py, gate/scanner/factory.py), so what
works here works in ``gate run``. Stop the daemon first (``systemctl stop
lungta-gate``): a device has one owner. Output is one JSON line per thing
seen, for the technician to read and for a script to check.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CommandError
from .output import emit

if TYPE_CHECKING:
    from gate.turnstile.turnstile import Turnstile

    from .config import GateConfig

PARTS = ("relay", "sensor", "scanner", "camera")


def add_command(gate: argparse._SubParsersAction) -> None:
    test = gate.add_parser(
        "test",
        help="for technicians: pulse a relay, watch the sensor, read codes, snapshot the camera",
        description="relay: admit one person in DIRECTION (relay pulsed or held as configured; the passage is waited for as in service). "
        "sensor: print each passage the sensor counts. scanner: print each code every configured scanner reads. "
        "camera: save one frame of each camera (--out) and print what the decoder found in it. Stop lungta-gate first.",
    )
    test.add_argument("part", choices=PARTS)
    test.add_argument("--config", required=True, type=Path, metavar="FILE", help="gate.toml")
    test.add_argument("--direction", choices=("entry", "exit"), default="entry", help="relay: which relay (default entry)")
    test.add_argument("--seconds", type=float, default=30.0, metavar="S", help="sensor, scanner: how long to watch (default 30)")
    test.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="camera: folder for the snapshots (default: here)")
    test.set_defaults(run=run_test)


def run_test(args: argparse.Namespace) -> int:
    from .config import load_gate_config

    config = load_gate_config(args.config)
    if args.seconds <= 0:
        raise CommandError("--seconds must be above 0")
    return {"relay": test_relay, "sensor": test_sensor, "scanner": test_scanner, "camera": test_camera}[args.part](config, args)


def _turnstile(config: "GateConfig"):
    from gate.turnstile.build import build_turnstile

    if config.turnstile is None:
        raise CommandError(f"{config.file}: no [turnstile] (a handheld validator has no relay or sensor)")
    return build_turnstile(config.turnstile)


def test_relay(config: "GateConfig", args: argparse.Namespace) -> int:
    turnstile = _turnstile(config)
    try:
        if args.direction not in turnstile.directions:
            raise CommandError(f"{config.file}: no {args.direction} relay configured (have: {', '.join(turnstile.directions)})")
        result = turnstile.admit(args.direction, 1)
    finally:
        turnstile.shutdown()
    emit({"part": "relay", "direction": args.direction, "passed": result.passed, "confirmed": result.confirmed, "timed_out": result.timed_out, "error": result.error, "seconds": round(result.ended_at - result.started_at, 3)})
    return 0 if result.error is None else 1


def test_sensor(config: "GateConfig", args: argparse.Namespace) -> int:
    turnstile = _turnstile(config)
    try:
        if not turnstile.confirms_passage:
            raise CommandError(f"{config.file}: no passage sensor configured in [turnstile]")
        watch_sensor(turnstile, args.seconds)
    finally:
        turnstile.shutdown()
    return 0


def watch_sensor(turnstile: "Turnstile", seconds: float, stop: threading.Event | None = None, out: Callable[[dict], None] = emit) -> int:
    """One line per passage the sensor counts, then the total; no relay moves."""
    started = time.monotonic()

    def passage(count: int) -> None:
        out({"part": "sensor", "passage": count, "at_seconds": round(time.monotonic() - started, 3)})

    count = turnstile.watch_passages(seconds, passage, stop)
    out({"part": "sensor", "passages": count, "seconds": round(time.monotonic() - started, 3)})
    return count


def test_scanner(config: "GateConfig", args: argparse.Namespace) -> int:
    from gate.scanner.factory import open_scanner

    if not config.scanners:
        raise CommandError(f"{config.file}: no [[scanner]] configured")
    stop = threading.Event()
    threads = []
    for index, entry in enumerate(config.scanners):
        scanner = open_scanner(entry.settings)
        thread = threading.Thread(target=_print_scans, args=(index, scanner, entry.direction.value, stop), name=f"test-scanner-{index}", daemon=True)
        thread.start()
        threads.append((thread, scanner))
    stop.wait(args.seconds)
    stop.set()
    for thread, scanner in threads:
        thread.join(5)
        scanner.close()
    return 0


def _print_scans(index: int, scanner, direction: str, stop: threading.Event) -> None:
    for scan in scanner.scans(stop):
        emit({"part": "scanner", "scanner": index, "direction": direction, "text": scan.text, "source": scan.source})


def test_camera(config: "GateConfig", args: argparse.Namespace) -> int:
    import cv2

    from gate.scanner.decoders import make_decoder
    from gate.scanner.frames import FramePipeline, open_frame_source
    from gate.scanner.settings import CameraSettings

    cameras = [(i, s.settings) for i, s in enumerate(config.scanners) if isinstance(s.settings, CameraSettings)]
    if not cameras:
        raise CommandError(f"{config.file}: no camera among the [[scanner]] tables")
    if not args.out.is_dir():
        raise CommandError(f"--out {args.out}: not a folder")
    for index, settings in cameras:
        source = open_frame_source(settings)
        try:
            frame = source.read()
        finally:
            source.release()
        if frame is None:
            raise CommandError(f"scanner[{index}] {settings.source}: no frame delivered")
        path = args.out / f"camera-{index}.png"
        if not cv2.imwrite(str(path), frame.image):
            raise CommandError(f"--out {path}: cannot write the snapshot")
        decoded = FramePipeline(make_decoder(settings.decoder), settings.roi, settings.downscale).decode(frame.image)
        height, width = frame.image.shape[:2]
        emit({"part": "camera", "scanner": index, "snapshot": str(path), "width": width, "height": height, "texts": decoded.texts, "decode_ms": round(decoded.seconds * 1000, 3)})
    return 0
