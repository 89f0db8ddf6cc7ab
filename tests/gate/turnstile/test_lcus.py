"""LCUS USB relay boards, driven over a real pty with a fake board checking every byte."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from gate.turnstile import LcusSettings, LineSettings, RelayError, TurnstileSettings, build_turnstile
from testkit.fake_boards import FakeLcusBoard
from testkit.visitors import break_beam, group_walks_through
from gate.turnstile.fakeline import FakeLineFactory
from gate.turnstile.relays import lcus_frame
from gate.turnstile.relay_port import open_relay_port, read_exact, write_frame

CHIP = "/dev/gpiochip0"
SENSOR = 22

OPEN_1, CLOSE_1 = bytes.fromhex("a00101a2"), bytes.fromhex("a00100a1")
OPEN_2, CLOSE_2 = bytes.fromhex("a00201a3"), bytes.fromhex("a00200a2")


@pytest.fixture
def board() -> Iterator[FakeLcusBoard]:
    with FakeLcusBoard(channels=2) as fake:
        yield fake
        fake.check()


def lcus_settings(port: str, **overrides: object) -> TurnstileSettings:
    return TurnstileSettings(kind="lcus", line_factory="fake", lcus=LcusSettings(port=port, exit_channel=2),
                             passage_sensor=LineSettings(SENSOR), pulse_seconds=0.03,
                             passage_timeout_seconds=0.1, **overrides)  # type: ignore[arg-type]


def test_lcus_frames_are_header_channel_state_and_sum() -> None:
    assert lcus_frame(1, True) == OPEN_1
    assert lcus_frame(1, False) == CLOSE_1
    assert lcus_frame(2, True) == OPEN_2
    assert lcus_frame(8, True) == bytes.fromhex("a00801a9")


def test_an_admission_sends_exactly_the_open_and_close_frames(board: FakeLcusBoard) -> None:
    lines = FakeLineFactory()
    turnstile = build_turnstile(lcus_settings(board.port), lines=lines)
    try:
        sensor = lines.line(CHIP, SENSOR)

        group_walks_through(lambda: board.wait_for(lambda: board.relays[1]), break_beam(sensor))
        result = turnstile.admit("entry", 1)
        assert (result.passed, result.error) == (1, None)
        # Start-up closes both channels (a fail-safe stop may have left them open), then one pulse.
        assert board.wait_for(lambda: len(board.frames) == 4)
        assert board.frames == [CLOSE_1, CLOSE_2, OPEN_1, CLOSE_1]
        assert board.relays == {1: False, 2: False}
    finally:
        turnstile.shutdown()


def test_emergency_and_fail_safe_shutdown_leave_both_channels_open(board: FakeLcusBoard) -> None:
    turnstile = build_turnstile(lcus_settings(board.port, fail_mode="fail-safe"), lines=FakeLineFactory())
    turnstile.set_emergency(True, "fire drill")
    assert board.wait_for(lambda: board.relays == {1: True, 2: True})
    turnstile.set_emergency(False, "drill over")
    assert board.wait_for(lambda: board.relays == {1: False, 2: False})
    turnstile.shutdown()
    assert board.wait_for(lambda: board.relays == {1: True, 2: True})
    assert board.frames[-2:] == [OPEN_1, OPEN_2]


def test_the_fake_board_rejects_a_frame_with_a_bad_checksum(board: FakeLcusBoard) -> None:
    port = open_relay_port(board.port)
    try:
        write_frame(port, board.port, bytes.fromhex("a00101a3"))
        write_frame(port, board.port, OPEN_2)
        assert board.wait_for(lambda: len(board.frames) == 1)
    finally:
        port.close()
    assert board.errors == ["bad checksum in a0 01 01 a3"]
    assert board.relays == {1: False, 2: True}
    board.errors.clear()


def test_an_unplugged_board_is_reported_naming_its_port(board: FakeLcusBoard) -> None:
    turnstile = build_turnstile(lcus_settings(board.port), lines=FakeLineFactory())
    try:
        board.unplug()
        result = turnstile.admit("entry", 1)
        assert result.passed == 0
        assert result.error is not None and board.port in result.error and "unplugged" in result.error
        state = turnstile.state()
        assert not state.relays_ok and state.last_error is not None and board.port in state.last_error
    finally:
        turnstile.shutdown()


def test_a_board_that_is_not_there_fails_start_up_naming_the_port() -> None:
    missing = "/dev/ttyUSB-lungta-missing"
    assert not os.path.exists(missing)
    with pytest.raises(RelayError, match=f"cannot open serial port {missing}"):
        build_turnstile(lcus_settings(missing), lines=FakeLineFactory())


def test_a_board_held_by_another_program_fails_start_up_naming_the_port(board: FakeLcusBoard) -> None:
    holder = open_relay_port(board.port)  # a second daemon, or a terminal left open on the board
    try:
        with pytest.raises(RelayError, match=f"cannot open serial port {board.port}"):
            build_turnstile(lcus_settings(board.port), lines=FakeLineFactory())
    finally:
        holder.close()
    assert board.frames == []  # not one relay command interleaved with the other program's


def test_ports_open_by_pyserial_url_and_silence_names_the_port() -> None:
    port = open_relay_port("loop://", timeout=0.05)
    try:
        write_frame(port, "loop://", OPEN_1)
        assert read_exact(port, "loop://", 4, "loopback") == OPEN_1
        with pytest.raises(RelayError, match="loopback on loop:// did not answer"):
            read_exact(port, "loop://", 4, "loopback")
    finally:
        port.close()
