"""Settings reject bad values with a message naming the field, before any hardware is touched."""

from __future__ import annotations

import pytest

from gate.turnstile import (
    GpioRelaySettings,
    LcusSettings,
    LineSettings,
    ModbusSettings,
    SimSettings,
    TurnstileSettings,
)

GPIO = GpioRelaySettings(entry=LineSettings(17))


def test_the_defaults_describe_a_valid_simulated_gate() -> None:
    settings = TurnstileSettings()
    assert (settings.kind, settings.fail_mode, settings.relay_action) == ("sim", "fail-secure", "pulse")
    assert settings.sim == SimSettings()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"kind": "pneumatic"}, "turnstile.kind"),
    ({"fail_mode": "fail-open"}, "turnstile.fail_mode"),
    ({"relay_action": "toggle"}, "turnstile.relay_action"),
    ({"pulse_seconds": 0}, "turnstile.pulse_seconds"),
    ({"hold_open_seconds": -1.0}, "turnstile.hold_open_seconds"),
    ({"passage_timeout_seconds": "ten"}, "turnstile.passage_timeout_seconds"),
    ({"line_factory": "rpi"}, "turnstile.line_factory"),
    ({"kind": "gpio"}, "turnstile.gpio"),
    ({"kind": "lcus"}, "turnstile.lcus"),
    ({"kind": "modbus"}, "turnstile.modbus"),
    ({"kind": "gpio", "gpio": GPIO}, "turnstile.passage_sensor"),
    ({"kind": "gpio", "gpio": GPIO, "passage_sensor": LineSettings(17)}, "turnstile.passage_sensor"),
])
def test_a_bad_turnstile_value_names_its_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        TurnstileSettings(**overrides)  # type: ignore[arg-type]


def test_a_line_used_twice_names_both_uses() -> None:
    with pytest.raises(ValueError, match="turnstile.buzzer: uses /dev/gpiochip0 line 23, already used by turnstile.green_light"):
        TurnstileSettings(kind="gpio", gpio=GPIO, passage_sensor=LineSettings(22),
                          green_light=LineSettings(23), buzzer=LineSettings(23))


def test_a_gate_without_sensor_is_allowed_only_when_confirmation_is_switched_off() -> None:
    settings = TurnstileSettings(kind="gpio", gpio=GPIO, passage_confirmation=False)
    assert settings.passage_sensor is None
    modbus_input = ModbusSettings(port="/dev/ttyUSB0", passage_input=0)
    assert TurnstileSettings(kind="modbus", modbus=modbus_input).passage_sensor is None


@pytest.mark.parametrize(("build", "field"), [
    (lambda: LineSettings(-1), "line"),
    (lambda: LineSettings(3, chip=""), "chip"),
    (lambda: LineSettings(3, bias="floating"), "bias"),
    (lambda: GpioRelaySettings(entry=LineSettings(3), exit=LineSettings(3)), "gpio.exit"),
    (lambda: LcusSettings(port="/dev/ttyUSB0", entry_channel=9), "lcus.entry_channel"),
    (lambda: LcusSettings(port="/dev/ttyUSB0", entry_channel=2, exit_channel=2), "lcus.exit_channel"),
    (lambda: LcusSettings(port=""), "lcus.port"),
    (lambda: ModbusSettings(port="/dev/ttyUSB0", slave=0), "modbus.slave"),
    (lambda: ModbusSettings(port="/dev/ttyUSB0", slave=248), "modbus.slave"),
    (lambda: ModbusSettings(port="/dev/ttyUSB0", passage_input=70000), "modbus.passage_input"),
    (lambda: ModbusSettings(port="/dev/ttyUSB0", response_timeout_seconds=0), "modbus.response_timeout_seconds"),
    (lambda: SimSettings(persons_passing=-1), "sim.persons_passing"),
    (lambda: SimSettings(passage_delay_seconds=-0.1), "sim.passage_delay_seconds"),
])
def test_a_bad_device_value_names_its_field(build, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        build()
