"""The fake line at the bottom of the stack behaves like a periphery GPIO line."""

from __future__ import annotations

import threading
import time

import pytest

from gate.turnstile.errors import LineError
from gate.turnstile.fakeline import FakeLine, FakeLineFactory
from gate.turnstile.build import line_factory
from gate.turnstile.gpio_lines import PeripheryLineFactory
from gate.turnstile.settings import LineSettings


def test_output_records_each_level_change_with_a_timestamp() -> None:
    line = FakeLine("relay", "out")
    line.write(True)
    line.write(True)  # no change, nothing recorded
    line.write(False)
    line.assert_states([False, True, False])
    stamps = [state.timestamp for state in line.states]
    assert stamps == sorted(stamps)


def test_active_low_output_drives_the_pin_low_when_active() -> None:
    line = FakeLine("relay", "out", inverted=True)
    line.write(True)
    assert line.read() is True
    line.assert_states([True, False])


def test_assert_states_fails_on_a_different_history() -> None:
    line = FakeLine("relay", "out")
    line.write(True)
    with pytest.raises(AssertionError, match="relay"):
        line.assert_states([False])


def test_driving_an_input_wakes_a_pending_poll_in_another_thread() -> None:
    sensor = FakeLine("beam", "in", edge="rising")
    started = threading.Event()
    outcome: list[bool] = []

    def wait() -> None:
        started.set()
        outcome.append(sensor.poll(5.0))

    waiter = threading.Thread(target=wait)
    waiter.start()
    started.wait()
    begun = time.monotonic()
    sensor.drive_high()
    waiter.join()
    assert outcome == [True]
    assert time.monotonic() - begun < 1.0
    assert sensor.read_event().edge == "rising"
    assert sensor.poll(0) is False


def test_poll_times_out_without_an_edge() -> None:
    sensor = FakeLine("beam", "in", edge="rising")
    begun = time.monotonic()
    assert sensor.poll(0.05) is False
    assert time.monotonic() - begun >= 0.05


def test_edges_follow_the_configured_edge_and_polarity() -> None:
    rising = FakeLine("npn beam", "in", edge="rising", inverted=True)  # active when pulled low
    rising.drive_low()  # becomes active: a rising edge in logical terms
    rising.drive_high()
    assert rising.poll(0)
    assert rising.read_event().edge == "rising"
    assert not rising.poll(0)

    both = FakeLine("alarm", "in", edge="both")
    both.drive_high()
    both.drive_low()
    assert [both.read_event().edge, both.read_event().edge] == ["rising", "falling"]


def test_a_connected_output_drives_its_input() -> None:
    panel = FakeLine("fire panel", "out")
    contact = FakeLine("alarm input", "in", edge="both")
    panel.connect(contact)
    panel.write(True)
    assert contact.read() is True
    assert contact.read_event().edge == "rising"
    panel.write(False)
    contact.assert_states([False, True, False])


def test_misuse_is_reported_naming_the_line() -> None:
    with pytest.raises(LineError, match="beam.*input"):
        FakeLine("beam", "in").write(True)
    with pytest.raises(LineError, match="relay.*output"):
        FakeLine("relay", "out").drive_high()
    closed = FakeLine("relay", "out")
    closed.close()
    with pytest.raises(LineError, match="relay.*closed"):
        closed.write(True)


def test_closing_wakes_a_pending_poll() -> None:
    sensor = FakeLine("beam", "in", edge="rising")
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(sensor.poll(5.0)))
    waiter.start()
    sensor.close()
    waiter.join(timeout=2.0)
    assert result == [False]


def test_the_factory_is_chosen_by_name_and_refuses_a_line_opened_twice() -> None:
    factory = line_factory("fake")
    assert isinstance(factory, FakeLineFactory)
    assert isinstance(line_factory("periphery"), PeripheryLineFactory)
    with pytest.raises(ValueError, match="line_factory"):
        line_factory("lgpio")
    line = factory.open(LineSettings(17), "out", label="entry relay")
    assert factory.line("/dev/gpiochip0", 17) is line
    with pytest.raises(LineError, match="line 17.*busy"):
        factory.open(LineSettings(17), "in", label="sensor")


def test_a_missing_gpio_chip_is_reported_naming_chip_and_line() -> None:
    with pytest.raises(LineError, match="/dev/gpiochip-lungta-missing line 4"):
        PeripheryLineFactory().open(LineSettings(4, chip="/dev/gpiochip-lungta-missing"), "out", label="entry relay")
