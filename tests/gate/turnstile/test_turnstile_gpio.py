"""A GPIO turnstile over fake lines: what staff and visitors would notice at the gate."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Iterator

import pytest

from gate.turnstile import (
    GpioRelaySettings,
    LineError,
    LineSettings,
    Turnstile,
    TurnstileError,
    TurnstileSettings,
    build_turnstile,
)
from gate.turnstile.fakeline import FakeLine, FakeLineFactory
from testkit.visitors import break_beam, group_walks_through, openings, visitors_walk_through_each_opening

CHIP = "/dev/gpiochip0"
ENTRY, EXIT, SENSOR, GREEN, RED, BUZZER, ALARM = 17, 18, 22, 23, 24, 25, 27
PULSE = 0.05
TIMEOUT = 0.15


def gpio_settings(**overrides: object) -> TurnstileSettings:
    base = TurnstileSettings(
        kind="gpio", line_factory="fake",
        gpio=GpioRelaySettings(entry=LineSettings(ENTRY), exit=LineSettings(EXIT)),
        passage_sensor=LineSettings(SENSOR), green_light=LineSettings(GREEN), red_light=LineSettings(RED),
        buzzer=LineSettings(BUZZER), emergency_input=LineSettings(ALARM),
        pulse_seconds=PULSE, passage_timeout_seconds=TIMEOUT, signal_seconds=0.05, beep_seconds=0.01)
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def lines() -> FakeLineFactory:
    return FakeLineFactory()


@pytest.fixture
def make_turnstile(lines: FakeLineFactory) -> Iterator[Callable[..., Turnstile]]:
    built: list[Turnstile] = []

    def make(**overrides: object) -> Turnstile:
        turnstile = build_turnstile(gpio_settings(**overrides), lines=lines)
        built.append(turnstile)
        return turnstile

    yield make
    for turnstile in built:
        turnstile.shutdown()


def test_relay_clicks_for_the_configured_pulse_and_one_visitor_passes(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    relay, sensor = lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR)
    visitors_walk_through_each_opening(relay, sensor, 1)
    result = turnstile.admit("entry", 1)
    assert (result.passed, result.expected, result.timed_out, result.error) == (1, 1, False, None)
    relay.assert_states([False, True, False])
    pulse = relay.states[2].timestamp - relay.states[1].timestamp
    assert PULSE <= pulse < PULSE + 0.25
    lines.line(CHIP, EXIT).assert_states([False])


def test_a_group_of_three_gets_three_pulses_and_three_passages(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    relay, sensor = lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR)
    visitors_walk_through_each_opening(relay, sensor, 3)
    result = turnstile.admit("entry", 3)
    assert (result.passed, result.expected, result.timed_out, result.missing) == (3, 3, False, 0)
    relay.assert_states([False, True, False, True, False, True, False])


def test_nobody_passing_times_out_reports_zero_and_closes(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    result = turnstile.admit("entry", 1)
    assert (result.passed, result.timed_out, result.missing) == (0, True, 1)
    assert result.ended_at - result.started_at >= PULSE + TIMEOUT
    lines.line(CHIP, ENTRY).assert_states([False, True, False])
    assert turnstile.state().relays == {"entry": False, "exit": False}


def test_two_of_a_group_of_three_pass_and_one_is_missing(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    visitors_walk_through_each_opening(lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR), 2)
    result = turnstile.admit("entry", 3)
    assert (result.passed, result.timed_out, result.missing) == (2, True, 1)


def test_someone_crossing_the_beam_before_the_gate_opened_does_not_count(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    sensor = lines.line(CHIP, SENSOR)
    sensor.drive_high()
    sensor.drive_low()
    assert turnstile.admit("entry", 1).passed == 0


def test_contact_bounce_counts_as_one_passage(make_turnstile, lines) -> None:
    turnstile = make_turnstile(sensor_debounce_seconds=0.5, relay_action="hold")
    relay, sensor = lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR)

    group_walks_through(lambda: relay.wait_for(lambda states: openings(states) >= 1), break_beam(sensor), 3)  # one person, bouncing
    result = turnstile.admit("entry", 2)
    assert (result.passed, result.timed_out) == (1, True)


def test_the_timeout_restarts_for_each_person_so_a_slow_group_is_not_cut_off(make_turnstile, lines) -> None:
    timeout = 0.3
    turnstile = make_turnstile(relay_action="hold", passage_timeout_seconds=timeout)
    relay, sensor = lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR)
    group_walks_through(lambda: relay.wait_for(lambda states: openings(states) >= 1), break_beam(sensor), 3, pace_seconds=timeout / 2)
    result = turnstile.admit("entry", 3)
    assert (result.passed, result.timed_out) == (3, False)
    assert result.ended_at - result.started_at > timeout


def test_hold_mode_keeps_the_relay_open_until_the_group_passed_then_hold_time(make_turnstile, lines) -> None:
    turnstile = make_turnstile(relay_action="hold", hold_open_seconds=0.05)
    relay, sensor = lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR)

    group_walks_through(lambda: relay.wait_for(lambda states: openings(states) >= 1), break_beam(sensor), 3)
    result = turnstile.admit("entry", 3)
    assert (result.passed, result.timed_out) == (3, False)
    relay.assert_states([False, True, False])
    last_passage = sensor.states[-1].timestamp
    assert relay.states[-1].timestamp - last_passage >= 0.05


def test_an_active_low_relay_board_is_driven_low_to_open(make_turnstile, lines) -> None:
    turnstile = make_turnstile(gpio=GpioRelaySettings(entry=LineSettings(ENTRY, active_low=True)))
    relay = lines.line(CHIP, ENTRY)
    visitors_walk_through_each_opening(relay, lines.line(CHIP, SENSOR), 1, active_high=False)
    assert turnstile.admit("entry", 1).passed == 1
    relay.assert_states([True, False, True])


def test_exit_uses_its_own_relay_and_unknown_directions_are_refused(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    turnstile.admit("exit", 1)
    lines.line(CHIP, EXIT).assert_states([False, True, False])
    lines.line(CHIP, ENTRY).assert_states([False])
    with pytest.raises(ValueError, match="direction.*'sideways'"):
        turnstile.admit("sideways", 1)
    with pytest.raises(ValueError, match="persons"):
        turnstile.admit("entry", 0)


def test_emergency_opens_every_relay_holds_them_and_is_visible(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    entry, exit_ = lines.line(CHIP, ENTRY), lines.line(CHIP, EXIT)
    turnstile.set_emergency(True, "evacuation ordered by staff")
    state = turnstile.state()
    assert state.emergency and "evacuation ordered by staff" in state.emergency_reason
    assert state.relays == {"entry": True, "exit": True}
    result = turnstile.admit("entry", 1)  # admitting during an emergency must not close anything
    assert result.timed_out
    entry.assert_states([False, True])
    assert lines.line(CHIP, GREEN).wait_for(lambda states: states[-1].high)
    turnstile.set_emergency(False, "all clear")
    assert not turnstile.state().emergency
    entry.assert_states([False, True, False])
    exit_.assert_states([False, True, False])


def test_an_emergency_during_an_admission_leaves_the_gate_open_afterwards(make_turnstile, lines) -> None:
    turnstile = make_turnstile(relay_action="hold")
    relay = lines.line(CHIP, ENTRY)

    def alarm_while_open() -> None:
        relay.wait_for(lambda states: openings(states) >= 1)
        turnstile.set_emergency(True, "fire")

    threading.Thread(target=alarm_while_open, daemon=True).start()
    turnstile.admit("entry", 1)
    relay.assert_states([False, True])
    assert turnstile.state().relays == {"entry": True, "exit": True}


def test_the_fire_alarm_input_switches_emergency_on_and_off(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    panel = FakeLine("fire alarm panel", "out")
    panel.connect(lines.line(CHIP, ALARM))
    entry, exit_ = lines.line(CHIP, ENTRY), lines.line(CHIP, EXIT)
    panel.write(True)
    assert entry.wait_for(lambda states: states[-1].high) and exit_.wait_for(lambda states: states[-1].high)
    assert turnstile.state().emergency
    assert "input" in turnstile.state().emergency_reason
    turnstile.set_emergency(False, "hub says all clear")  # the alarm is still active: stays open
    assert turnstile.state().emergency
    entry.assert_states([False, True])
    panel.write(False)
    assert entry.wait_for(lambda states: not states[-1].high)
    assert not turnstile.state().emergency


@pytest.mark.parametrize(("fail_mode", "emergency", "left_open"), [
    ("fail-safe", False, True),
    ("fail-secure", False, False),
    ("fail-secure", True, True),
])
def test_shutdown_leaves_relays_in_the_fail_mode(lines, fail_mode: str, emergency: bool, left_open: bool) -> None:
    turnstile = build_turnstile(gpio_settings(fail_mode=fail_mode), lines=lines)
    if emergency:
        turnstile.set_emergency(True, "fire")
    turnstile.shutdown()
    for offset in (ENTRY, EXIT):
        assert lines.line(CHIP, offset).states[-1].high is left_open
        assert lines.line(CHIP, offset).closed
    assert turnstile.state().shut_down
    with pytest.raises(TurnstileError, match="shut down"):
        turnstile.admit("entry", 1)


def test_shutdown_cuts_a_waiting_admission_short(make_turnstile, lines) -> None:
    turnstile = make_turnstile(passage_timeout_seconds=30.0, relay_action="hold")
    relay = lines.line(CHIP, ENTRY)
    results = []
    admitting = threading.Thread(target=lambda: results.append(turnstile.admit("entry", 1)))
    admitting.start()
    assert relay.wait_for(lambda states: openings(states) >= 1)
    turnstile.shutdown()
    admitting.join(timeout=2.0)
    assert not admitting.is_alive()
    assert (results[0].passed, results[0].timed_out) == (0, False)
    relay.assert_states([False, True, False])


def test_granted_shows_green_with_one_beep(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    turnstile.admit("entry", 1)
    green, buzzer = lines.line(CHIP, GREEN), lines.line(CHIP, BUZZER)
    assert green.wait_for(lambda states: len(states) == 3)
    assert buzzer.wait_for(lambda states: len(states) == 3)
    green.assert_states([False, True, False])
    buzzer.assert_states([False, True, False])
    lines.line(CHIP, RED).assert_states([False])


def test_refusal_shows_red_with_two_beeps_without_blocking(make_turnstile, lines) -> None:
    turnstile = make_turnstile(signal_seconds=0.3)
    begun = time.monotonic()
    turnstile.refuse()
    assert time.monotonic() - begun < 0.1
    red, buzzer = lines.line(CHIP, RED), lines.line(CHIP, BUZZER)
    assert red.wait_for(lambda states: len(states) == 3)
    assert buzzer.wait_for(lambda states: len(states) == 5)
    red.assert_states([False, True, False])
    buzzer.assert_states([False, True, False, True, False])
    assert red.states[2].timestamp - red.states[1].timestamp >= 0.3
    lines.line(CHIP, GREEN).assert_states([False])


def test_a_gate_without_lights_buzzer_or_alarm_still_admits(make_turnstile, lines) -> None:
    turnstile = make_turnstile(green_light=None, red_light=None, buzzer=None, emergency_input=None)
    visitors_walk_through_each_opening(lines.line(CHIP, ENTRY), lines.line(CHIP, SENSOR), 1)
    assert turnstile.admit("entry", 1).passed == 1
    turnstile.refuse()
    with pytest.raises(LineError):
        lines.line(CHIP, GREEN)


def test_a_relay_that_fails_is_reported_and_nobody_counts_as_passed(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    lines.line(CHIP, ENTRY).close()  # the chip went away underneath
    result = turnstile.admit("entry", 2)
    assert result.passed == 0 and not result.timed_out
    assert result.error is not None and f"{CHIP} line {ENTRY}" in result.error
    state = turnstile.state()
    assert not state.relays_ok and state.last_error is not None and f"line {ENTRY}" in state.last_error
    assert lines.line(CHIP, RED).wait_for(lambda states: len(states) >= 2)


def test_a_sensor_that_fails_is_reported(make_turnstile, lines) -> None:
    turnstile = make_turnstile()
    lines.line(CHIP, SENSOR).close()
    result = turnstile.admit("entry", 1)
    assert result.error is not None and "passage sensor" in result.error
    assert not turnstile.state().sensor_ok
    lines.line(CHIP, ENTRY).assert_states([False])


def test_without_a_sensor_admissions_are_assumed_and_marked_unconfirmed(make_turnstile, lines) -> None:
    turnstile = make_turnstile(passage_sensor=None, passage_confirmation=False)
    result = turnstile.admit("entry", 2)
    assert (result.passed, result.confirmed, result.timed_out) == (2, False, False)
    relay = lines.line(CHIP, ENTRY)
    relay.assert_states([False, True, False, True, False])
    assert relay.states[3].timestamp - relay.states[2].timestamp >= PULSE  # a gap the controller can see
