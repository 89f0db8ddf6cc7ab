"""Real ticket QR images and real photos decoded by the real decoders."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno
from nacl.signing import SigningKey

from gate.scanner import DEFAULT_DECODER, DecoderUnavailable, SettingsError
from gate.scanner.decoders import make_decoder
from gate.scanner.frames import FramePipeline
from testkit.synthetic_frames import FrameConditions, camera_frame, code_image, random_conditions
from protocol.qr import write_ticket_png
from protocol.ticket import issue_ticket, read_ticket
from testkit.tickets import make_claims

from .conftest import CORPUS

DECODERS = ["zxing", "pyzbar"]
# Measured on the shared corpus (200 images with an expected text) by bench/bench_decode.py;
# a decoder reading fewer than this has regressed.
CORPUS_FLOOR = {"zxing": 187, "pyzbar": 157}


def pipeline(name: str, **options: Any) -> FramePipeline:
    return FramePipeline(make_decoder(name), **options)


@pytest.mark.parametrize("decoder", DECODERS)
def test_ticket_png_written_by_the_protocol_decodes_to_the_exact_ticket(decoder: str, tmp_path: Path, tickets: list[str]) -> None:
    path = tmp_path / "ticket.png"
    write_ticket_png(tickets[0], path)
    image = cv2.imread(str(path))
    assert image is not None
    texts = pipeline(decoder).decode(image).texts
    assert texts == [tickets[0]]
    assert read_ticket(texts[0]).claims.site == "potala"  # the decoded text is a parseable ticket


@pytest.mark.parametrize("decoder", DECODERS)
def test_dark_mode_code_on_a_phone_is_read(decoder: str, tickets: list[str]) -> None:
    assert pipeline(decoder).decode(code_image(tickets[0], module_px=4, dark_mode=True)).texts == [tickets[0]]
    frame = camera_frame(tickets[1], FrameConditions(phone_screen=True, dark_mode=True, tilt_degrees=10), np.random.default_rng(3))
    assert pipeline(decoder).decode(frame).texts == [tickets[1]]


@pytest.mark.parametrize("decoder", DECODERS)
def test_text_is_kept_exactly_as_the_code_carries_it(decoder: str) -> None:
    text = "  LT1:SPACES AT BOTH ENDS  "
    image = np.kron(np.pad(np.where(np.array(segno.make_qr(text).matrix) == 1, 0, 255), 4, constant_values=255), np.ones((5, 5))).astype(np.uint8)
    assert pipeline(decoder).decode(image).texts == [text]


@pytest.mark.parametrize("decoder", DECODERS)
def test_frame_without_a_code_decodes_to_nothing(decoder: str) -> None:
    frame = camera_frame(None, FrameConditions(), np.random.default_rng(5))
    assert pipeline(decoder).decode(frame).texts == []


def test_default_decoder_reads_gate_camera_frames_at_both_resolutions() -> None:
    # Seeded key, ids and conditions: the same 24 frames every run, from easy to hard.
    key = SigningKey(bytes(range(32)))
    texts = [issue_ticket(make_claims(ticket_id=bytes([index]) * 12), key) for index in range(12)]
    rng = np.random.default_rng(11)
    decode = pipeline(DEFAULT_DECODER)
    for width, height in ((640, 480), (1280, 720)):
        read = sum(decode.decode(camera_frame(text, random_conditions(rng, width, height), rng)).texts == [text] for text in texts)
        assert read >= 11, f"{read}/12 frames read at {width}x{height}"


def test_region_of_interest_keeps_out_a_code_held_up_beside_the_reader(tickets: list[str]) -> None:
    left, right = code_image(tickets[0], 3), code_image(tickets[1], 3)
    frame = np.full((left.shape[0] + 40, left.shape[1] * 2 + 80), 200, np.uint8)
    frame[20 : 20 + left.shape[0], 20 : 20 + left.shape[1]] = left
    frame[20 : 20 + right.shape[0], 60 + left.shape[1] : 60 + 2 * left.shape[1]] = right
    assert sorted(pipeline("zxing").decode(frame).texts) == sorted(tickets[:2])
    roi = (0, 0, left.shape[1] + 40, frame.shape[0])
    assert pipeline("zxing", roi=roi).decode(frame).texts == [tickets[0]]


def test_downscaled_large_code_still_reads(tickets: list[str]) -> None:
    big = code_image(tickets[0], module_px=10)
    assert pipeline("zxing", downscale=0.4).decode(big).texts == [tickets[0]]


def test_roi_outside_the_frame_is_a_settings_error_naming_it() -> None:
    with pytest.raises(SettingsError, match=r"roi \(700, 0, 10, 10\).*640x480"):
        pipeline("zxing", roi=(700, 0, 10, 10)).decode(np.zeros((480, 640), np.uint8))


def test_missing_decoder_libraries_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # as on a board with no zxing-cpp wheel
    monkeypatch.setitem(sys.modules, "pyzbar", None)  # ... nor pyzbar
    with pytest.raises(DecoderUnavailable, match="zxing-cpp.*fallback.*pyzbar"):
        make_decoder("zxing")
    with pytest.raises(SettingsError, match="opencv"):
        make_decoder("opencv")


# Hides zxingcpp from every import in the process, as on a board with no zxing-cpp wheel.
_NO_ZXING = """
import sys
class _NoZxing:
    def find_spec(self, name, path=None, target=None):
        if name == "zxingcpp" or name.startswith("zxingcpp."):
            raise ImportError("No module named 'zxingcpp' (hidden by the test)")
        return None
sys.meta_path.insert(0, _NoZxing())
"""


def test_without_zxing_cpp_the_default_decoder_falls_back_to_pyzbar_in_one_log_line(tmp_path: Path, tickets: list[str]) -> None:
    import os
    import subprocess

    (tmp_path / "sitecustomize.py").write_text(_NO_ZXING, encoding="utf-8")
    write_ticket_png(tickets[0], tmp_path / "ticket.png")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "lungta", "scan", "--image", str(tmp_path / "ticket.png")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == tickets[0]
    warnings = [line for line in result.stderr.splitlines() if "decoder zxing unavailable" in line]
    assert len(warnings) == 1 and "using pyzbar" in warnings[0] and result.stderr.count("\n") == 1


def corpus_entries() -> list[dict]:
    manifest = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    return [entry for entry in manifest if entry["expected"] is not None]


@pytest.mark.skipif(not (CORPUS / "manifest.json").is_file(), reason=f"shared photo corpus not found at {CORPUS}")
@pytest.mark.parametrize("decoder", DECODERS)
def test_corpus_of_real_photos_reads_at_least_the_measured_count(decoder: str) -> None:
    decode = pipeline(decoder)
    correct = 0
    for entry in corpus_entries():
        image = cv2.imread(str(CORPUS / entry["image"]), cv2.IMREAD_COLOR)
        assert image is not None, entry["image"]
        expected = base64.b64decode(entry["expected_b64"]).decode("utf-8")
        correct += expected in decode.decode(image).texts
    assert correct >= CORPUS_FLOOR[decoder], f"{decoder} read {correct} of the corpus photos, floor {CORPUS_FLOOR[decoder]}"
