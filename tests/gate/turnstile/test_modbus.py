"""Modbus RTU relay modules, over a real pty with a fake slave that checks every frame."""

from __future__ import annotations

from typing import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate.turnstile import (
    BoardProtocolError,
    ModbusExceptionResponse,
    ModbusSettings,
    RelayError,
    TurnstileSettings,
    build_turnstile,
)
from testkit.fake_boards import FakeModbusBoard, crc16_modbus_bitwise
from testkit.visitors import group_walks_through
from gate.turnstile.fakeline import FakeLineFactory
from gate.turnstile.modbus import ModbusRelayModule, crc16_modbus, read_discrete_inputs_request, write_coil_request
from gate.turnstile.relay_port import open_relay_port, write_frame


@pytest.fixture
def board() -> Iterator[FakeModbusBoard]:
    with FakeModbusBoard(slave=7, coils=4, inputs=2) as fake:
        yield fake
        fake.check()


@pytest.fixture
def module(board: FakeModbusBoard) -> Iterator[ModbusRelayModule]:
    relay_module = ModbusRelayModule(board.port, slave=7, timeout=0.1, retries=1)
    yield relay_module
    relay_module.close()


def modbus_settings(port: str, **overrides: object) -> TurnstileSettings:
    return TurnstileSettings(
        kind="modbus", line_factory="fake", relay_action="hold", passage_timeout_seconds=0.15,
        modbus=ModbusSettings(port=port, slave=7, entry_coil=0, exit_coil=1, passage_input=0,
                              response_timeout_seconds=0.1, input_poll_seconds=0.005),
        **overrides)  # type: ignore[arg-type]


def test_write_single_coil_frames_match_the_modbus_specification() -> None:
    assert write_coil_request(1, 0, True) == bytes.fromhex("01050000ff008c3a")
    assert write_coil_request(1, 0, False) == bytes.fromhex("010500000000cdca")
    assert read_discrete_inputs_request(1, 0, 1) == bytes.fromhex("010200000001b9ca")


@given(st.binary(max_size=64))
def test_table_crc_agrees_with_the_bitwise_crc(data: bytes) -> None:
    assert crc16_modbus(data) == crc16_modbus_bitwise(data)


def test_a_coil_switches_and_the_echo_is_accepted(board: FakeModbusBoard, module: ModbusRelayModule) -> None:
    module.write_coil(3, True)
    assert board.coils == [False, False, False, True]
    module.write_coil(3, False)
    assert board.requests == [write_coil_request(7, 3, True), write_coil_request(7, 3, False)]
    assert board.coils == [False] * 4


def test_an_admission_opens_the_coil_and_counts_passages_on_the_module_input(board: FakeModbusBoard) -> None:
    turnstile = build_turnstile(modbus_settings(board.port), lines=FakeLineFactory())
    try:
        group_walks_through(lambda: board.wait_for(lambda: board.coils[0]), lambda: board.queue_passage(0, count=2))
        result = turnstile.admit("entry", 2)
        assert (result.passed, result.timed_out, result.error) == (2, False, None)
        coil_writes = [frame for frame in board.requests if frame[1] == 0x05]
        assert coil_writes == [write_coil_request(7, 0, False), write_coil_request(7, 1, False),
                               write_coil_request(7, 0, True), write_coil_request(7, 0, False)]
        assert board.coils[:2] == [False, False]
    finally:
        turnstile.shutdown()


def test_nobody_on_the_module_input_times_out(board: FakeModbusBoard) -> None:
    turnstile = build_turnstile(modbus_settings(board.port), lines=FakeLineFactory())
    try:
        result = turnstile.admit("entry", 1)
        assert (result.passed, result.timed_out) == (0, True)
        assert turnstile.state().sensor_ok
    finally:
        turnstile.shutdown()


def test_an_exception_response_is_a_relay_error_naming_port_and_reason(board: FakeModbusBoard,
                                                                     module: ModbusRelayModule) -> None:
    board.answer_exception(4)
    with pytest.raises(ModbusExceptionResponse, match=f"modbus slave 7 on {board.port}.*slave device failure") as info:
        module.write_coil(0, True)
    assert isinstance(info.value, RelayError) and info.value.code == 4
    assert len(board.requests) == 1  # a refusal is not retried
    assert board.coils[0] is False


def test_a_coil_the_module_does_not_have_is_refused_by_it(board: FakeModbusBoard, module: ModbusRelayModule) -> None:
    with pytest.raises(ModbusExceptionResponse, match="illegal data address"):
        module.write_coil(9, True)


def test_a_corrupted_answer_is_retried_once_then_reported(board: FakeModbusBoard, module: ModbusRelayModule) -> None:
    board.corrupt_answers(1)
    module.write_coil(2, True)  # the retry gets a clean echo
    assert board.coils[2] is True
    board.corrupt_answers(2)
    with pytest.raises(BoardProtocolError, match=f"modbus slave 7 on {board.port}: bad CRC"):
        module.write_coil(2, False)


def test_an_echo_that_differs_from_the_command_is_a_protocol_error(board: FakeModbusBoard,
                                                                  module: ModbusRelayModule) -> None:
    board.substitute_answer(bytes.fromhex("0705000100ff"))  # another coil, and a wrong value
    board.substitute_answer(bytes.fromhex("0705000100ff"))
    with pytest.raises(BoardProtocolError, match=f"modbus slave 7 on {board.port}: echo 07 05 00 01 00 ff"):
        module.write_coil(0, True)


def test_a_wrong_slave_address_gets_no_answer_and_names_the_port(board: FakeModbusBoard) -> None:
    wrong = ModbusRelayModule(board.port, slave=8, timeout=0.05, retries=0)
    try:
        with pytest.raises(RelayError, match=f"modbus slave 8 on {board.port} did not answer"):
            wrong.write_coil(0, True)
    finally:
        wrong.close()
    assert board.requests == []


def test_the_fake_slave_ignores_and_flags_a_request_with_a_bad_crc(board: FakeModbusBoard) -> None:
    port = open_relay_port(board.port, timeout=0.05)
    try:
        bad = bytearray(write_coil_request(7, 0, True))
        bad[-1] ^= 0x01
        write_frame(port, board.port, bytes(bad))
        assert port.read(8) == b""  # a real slave stays silent
    finally:
        port.close()
    assert board.errors == [f"bad CRC in request {bytes(bad).hex(' ')}"]
    assert board.coils[0] is False
    board.errors.clear()


def test_a_module_that_refuses_during_an_admission_is_reported(board: FakeModbusBoard) -> None:
    turnstile = build_turnstile(modbus_settings(board.port), lines=FakeLineFactory())
    try:
        board.answer_exception(6, count=3)
        result = turnstile.admit("entry", 1)
        assert result.passed == 0 and result.error is not None
        assert board.port in result.error and "busy" in result.error
        assert not turnstile.state().relays_ok
    finally:
        turnstile.shutdown()


def test_an_unplugged_module_is_reported_naming_its_port(board: FakeModbusBoard, module: ModbusRelayModule) -> None:
    board.unplug()
    with pytest.raises(RelayError, match=board.port):
        module.write_coil(0, True)


def test_two_stop_bits_are_set_on_the_port_and_the_module_still_answers(board: FakeModbusBoard) -> None:
    import os
    import termios

    module = ModbusRelayModule(board.port, slave=7, timeout=0.1, retries=1, stop_bits=2)
    try:
        fd = os.open(board.port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            cflag = termios.tcgetattr(fd)[2]  # the tty's own settings, as the module applied them
        finally:
            os.close(fd)
        assert cflag & termios.CSTOPB and not cflag & termios.PARENB
        assert module.character_format == "8N2"
        module.write_coil(3, True)
        assert board.coils[3] is True
    finally:
        module.close()


@pytest.mark.parametrize("parity, stop_bits, shown", [("even", 1, "8E1"), ("odd", 2, "8O2"), ("none", 1, "8N1")])
def test_parity_is_set_on_the_port(parity: str, stop_bits: int, shown: str) -> None:
    # A Linux pty refuses parity (EINVAL), so this runs on pyserial's loop:// port.
    module = ModbusRelayModule("loop://", parity=parity, stop_bits=stop_bits)
    try:
        assert module.character_format == shown
    finally:
        module.close()


def test_a_port_that_cannot_take_the_parity_is_one_error_naming_it(board: FakeModbusBoard) -> None:
    with pytest.raises(RelayError, match=rf"serial port {board.port}: cannot set 8E1"):
        ModbusRelayModule(board.port, slave=7, parity="even")


def test_modbus_parity_and_stop_bits_settings_are_checked() -> None:
    from gate.turnstile.errors import TurnstileError
    from gate.turnstile.settings import ModbusSettings

    assert (ModbusSettings(port="/dev/x", parity="even", stop_bits=2).parity, ModbusSettings(port="/dev/x").stop_bits) == ("even", 1)
    with pytest.raises((TurnstileError, ValueError), match="modbus.parity"):
        ModbusSettings(port="/dev/x", parity="mark")
    with pytest.raises((TurnstileError, ValueError), match="modbus.stop_bits"):
        ModbusSettings(port="/dev/x", stop_bits=3)
