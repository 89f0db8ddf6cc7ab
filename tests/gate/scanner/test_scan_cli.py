"""``lungta scan``: what an operator checking a camera set-up sees."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lungta import scan_cli
from lungta.errors import CommandError
from protocol.qr import write_ticket_png

from .conftest import write_video


def lungta_scan(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lungta")
    scan_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["scan", *argv])
    return args.run(args)


def records(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_images_print_one_json_line_per_code(tmp_path: Path, tickets: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    write_ticket_png(tickets[0], first)
    write_ticket_png(tickets[1], second)
    assert lungta_scan("--image", str(first), str(second)) == 0
    out = records(capsys)
    assert [(r["text"], r["source"], r["time"]) for r in out] == [(tickets[0], f"image:{first}", None), (tickets[1], f"image:{second}", None)]
    assert all(0 < r["decode_ms"] < 1000 for r in out)


def test_video_prints_each_ticket_once_with_its_position(tmp_path: Path, tickets: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    video = write_video(tmp_path / "check.avi", [None] * 3 + [tickets[0]] * 6 + [None] * 4 + [tickets[1]] * 6, fps=10)
    assert lungta_scan("--video", str(video), "--decoder", "pyzbar") == 0
    out = records(capsys)
    assert [(r["text"], r["time"]) for r in out] == [(tickets[0], 0.3), (tickets[1], 1.3)]
    assert all(r["source"] == f"camera:{video}" for r in out)


def test_nothing_found_exits_1_with_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 180, np.uint8))
    assert lungta_scan("--image", str(blank)) == scan_cli.EXIT_NOTHING_FOUND
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--video", "/nonexistent/gate.avi"], "/nonexistent/gate.avi: no such file"),
        (["--image", "/nonexistent/ticket.png"], "/nonexistent/ticket.png: not a readable image"),
        (["--image", "x.png", "--roi", "1,2,3"], "--roi"),
        (["--image", "x.png", "--downscale", "2"], "downscale"),
    ],
)
def test_user_errors_are_one_clear_message(argv: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        lungta_scan(*argv)
