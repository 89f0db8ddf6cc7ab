"""Operator commands: a gate acts only on arguments of exactly the declared types."""

from __future__ import annotations

import pytest

from protocol.hub_messages import Command, EmergencyOpen, command_body, decode_command
from protocol.messages import MalformedMessage


@pytest.mark.parametrize("on", [True, False])
def test_emergency_open_with_a_boolean_decodes_as_sent(on: bool) -> None:
    command = Command("emergency_open", {"on": on, "reason": "fire drill"})
    assert decode_command(command_body(command)) == command


@pytest.mark.parametrize(
    "args, complaint",
    [
        ({"on": 1}, "on=1 must be true or false"),  # read as "not True" it turned the emergency off
        ({"on": "true"}, "on='true' must be true or false"),
        ({"on": True, "reason": 3}, "reason=3 must be str"),
        ({"reason": "drill"}, "needs argument on"),  # no default: the hub must say which way
        ({"on": True, "colour": "red"}, "has no argument 'colour'"),
    ],
)
def test_emergency_open_with_other_arguments_is_malformed(args: dict, complaint: str) -> None:
    with pytest.raises(MalformedMessage, match=complaint):
        decode_command({"name": "emergency_open", "args": args})


@pytest.mark.parametrize("args, emergency", [({"on": False, "reason": "drill over"}, EmergencyOpen(False, "drill over")), ({"on": True}, EmergencyOpen(True, "hub command"))])
def test_the_gate_reads_emergency_open_as_typed_arguments(args: dict, emergency: EmergencyOpen) -> None:
    assert EmergencyOpen.of(decode_command({"name": "emergency_open", "args": args})) == emergency


def test_a_command_this_gate_does_not_know_still_decodes_for_the_gate_to_log() -> None:
    assert decode_command({"name": "reboot", "args": {"in": 5}}) == Command("reboot", {"in": 5})
