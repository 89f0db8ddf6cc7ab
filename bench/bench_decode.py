"""QR decoding as a gate camera does it: real photos, synthetic gate frames, empty frames.

Run: .venv/bin/python -m bench.bench_decode

1. The shared photo corpus (../shared/corpus/qr-photos): per decoder, codes
   read correctly, wrongly and missed, and decode time per image.
2. Synthetic gate-camera frames of signed tickets (phone or paper at an
   angle, blur, noise, glare, uneven light) at 640x480 and 1280x720, on one
   core: camera frame (BGR) to decoded text, beside the bare library call on
   the same frames already in gray (interleaved, see bench/stats.py), and
   the cost of a frame with no code in it, which is what an idle gate
   decodes all day.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import statistics
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from nacl.signing import SigningKey

from gate.scanner.decoders import Decoder, PyzbarDecoder, ZxingDecoder
from gate.scanner.frames import FramePipeline
from testkit.synthetic_frames import camera_frame, random_conditions
from protocol.claims import TicketClaims, TimeSlot
from protocol.ticket import issue_ticket

from .stats import interleaved, machine, percentile

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "qr-photos"
SIZES = ((640, 480, 10.0), (1280, 720, 20.0))  # width, height, p95 goal in ms
NOW = 1_795_000_000  # fixed claims, so every run decodes the same codes


class OpenCVDecoder:
    """OpenCV's own QR detectors, for the corpus comparison only."""

    def __init__(self, name: str, detector: Any) -> None:
        self.name = name
        self._detector = detector

    def decode(self, gray: np.ndarray) -> list[str]:
        try:
            found, texts, _, _ = self._detector.detectAndDecodeMulti(gray)
        except UnicodeDecodeError:
            return ["<not UTF-8>"]  # it read something, but its binding cannot hand it over: a wrong read
        except cv2.error:
            return []  # e.g. "mode 13 not implemented": a QR feature it cannot decode
        return [text for text in texts if text] if found else []


def ms(seconds: float) -> float:
    return seconds * 1000.0


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"bench_decode: cannot read {path}")
    return np.asarray(image)


def corpus_table() -> None:
    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        print(f"## corpus: not found at {CORPUS}, skipped")
        return
    entries = [e for e in json.loads(manifest.read_text(encoding="utf-8")) if e["expected_b64"] is not None]
    images = [(base64.b64decode(e["expected_b64"]).decode("utf-8"), e["kind"], read_image(CORPUS / e["image"])) for e in entries]
    photos = sum(kind == "photo" for _, kind, _ in images)
    decoders: list[tuple[str, Decoder]] = [
        ("zxing (default)", ZxingDecoder()),
        ("zxing +downscale", ZxingDecoder(try_downscale=True)),
        ("pyzbar", PyzbarDecoder()),
        ("opencv QRCodeDetector", OpenCVDecoder("opencv", cv2.QRCodeDetector())),
        ("opencv Aruco", OpenCVDecoder("opencv-aruco", cv2.QRCodeDetectorAruco())),
    ]
    print(f"## corpus: {len(images)} images with an expected text ({photos} photos); frame -> text per image, one pass")
    print(f"{'decoder':22} {'correct':>7} {'wrong':>5} {'missed':>6} {'photos':>7} {'median ms':>9} {'p95 ms':>7}")
    for name, decoder in decoders:
        pipeline = FramePipeline(decoder)
        pipeline.decode(images[0][2])  # lazy initialisation out of the timings
        correct = wrong = missed = photo_correct = 0
        times = []
        for expected, kind, image in images:
            decoded = pipeline.decode(image)
            times.append(decoded.seconds)
            if expected in decoded.texts:
                correct += 1
                photo_correct += kind == "photo"
            elif decoded.texts:
                wrong += 1
            else:
                missed += 1
        print(f"{name:22} {correct:7} {wrong:5} {missed:6} {photo_correct:3}/{photos:<3} {ms(statistics.median(times)):9.2f} {ms(percentile(times, 0.95)):7.2f}")


def cycling(function: Callable[[Any], object], items: Sequence[Any]) -> Callable[[], object]:
    """A no-argument call that feeds ``function`` the next item each time, round and round."""
    source = itertools.cycle(items)
    return lambda: function(next(source))


def synthetic_frames(width: int, height: int, count: int, seed: int) -> tuple[list[tuple[str, np.ndarray]], list[np.ndarray]]:
    """Signed tickets in gate-camera frames, the same on every run (seeded key, ids and conditions)."""
    rng = np.random.default_rng(seed)
    key = SigningKey(rng.bytes(32))
    frames = []
    for _ in range(count):
        claims = TicketClaims(ticket_id=rng.bytes(12), site="potala", not_before=NOW, expires=NOW + 86_400, issued_at=NOW, slot=TimeSlot(540, 600))
        text = issue_ticket(claims, key)
        frames.append((text, camera_frame(text, random_conditions(rng, width, height), rng)))
    blanks = [camera_frame(None, random_conditions(rng, width, height), rng) for _ in range(count // 3)]
    return frames, blanks


def bare_call(name: str) -> Callable[[np.ndarray], object]:
    """The library call alone, with the options our decoder uses, on a gray frame."""
    if name == "zxing":
        import zxingcpp

        options: dict[str, Any] = dict(formats=zxingcpp.BarcodeFormat.QRCode, try_rotate=False, try_downscale=False, try_invert=True, text_mode=zxingcpp.TextMode.Plain)
        return lambda gray: zxingcpp.read_barcodes(gray, **options)
    from pyzbar import pyzbar

    return lambda gray: pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])


def synthetic_table(count: int, rounds: dict[str, int]) -> None:
    print(f"## synthetic gate frames: {count} ticket frames and {count // 3} empty frames per size; one core; ms")
    print(f"{'size':9} {'decoder':8} {'read':>7} {'p50':>6} {'p95':>6} {'bare p50':>8} {'bare p95':>8} {'ratio':>5} {'empty p50':>9} {'empty p95':>9}  goal p95")
    for width, height, goal in SIZES:
        frames, blanks = synthetic_frames(width, height, count, seed=width)
        grays = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for _, frame in frames]
        for name, decoder in (("zxing", ZxingDecoder()), ("pyzbar", PyzbarDecoder())):
            pipeline = FramePipeline(decoder)
            read = sum(pipeline.decode(frame).texts == [text] for text, frame in frames)
            results = interleaved(
                {
                    "frame": cycling(pipeline.decode, [frame for _, frame in frames]),
                    "bare": cycling(bare_call(name), grays),
                    "empty": cycling(pipeline.decode, blanks),
                },
                rounds[name],
                batch=count,
            )
            frame_t, bare_t, empty_t = results["frame"], results["bare"], results["empty"]
            p95 = ms(percentile(frame_t, 0.95))
            verdict = "met" if p95 < goal else "MISSED"
            print(
                f"{f'{width}x{height}':9} {name:8} {read:3}/{count:<3} {ms(statistics.median(frame_t)):6.2f} {p95:6.2f} "
                f"{ms(statistics.median(bare_t)):8.2f} {ms(percentile(bare_t, 0.95)):8.2f} {statistics.median(frame_t) / statistics.median(bare_t):5.2f} "
                f"{ms(statistics.median(empty_t)):9.2f} {ms(percentile(empty_t, 0.95)):9.2f}  < {goal:.0f} {verdict}"
            )


def main(count: int = 60, zxing_rounds: int = 1200, pyzbar_rounds: int = 120) -> None:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # one core, as the goals are stated
    versions = f"zxing-cpp {metadata.version('zxing-cpp')}, pyzbar {metadata.version('pyzbar')}, OpenCV {cv2.__version__}"
    print(f"# bench_decode: {machine()}; {versions}; 1 thread, pinned to one core")
    corpus_table()
    synthetic_table(count, {"zxing": zxing_rounds, "pyzbar": pyzbar_rounds})
    print("ratio = median camera frame (BGR) to text / median bare library call on the same frame in gray")


if __name__ == "__main__":
    main()
