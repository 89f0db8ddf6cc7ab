"""A code held in front of a reader is one scan; a code shown again later is a new one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate.scanner import Backoff, Deduplicator, SettingsError


def test_code_held_for_a_minute_at_30_fps_is_reported_once() -> None:
    dedupe = Deduplicator(window=2.0)
    reports = [dedupe.should_report("LT1:A", frame / 30) for frame in range(30 * 60)]
    assert reports.count(True) == 1 and reports[0]


def test_code_shown_again_after_the_window_is_reported_again() -> None:
    dedupe = Deduplicator(window=2.0)
    assert dedupe.should_report("LT1:A", 10.0)
    assert not dedupe.should_report("LT1:A", 11.9)
    assert dedupe.should_report("LT1:A", 14.0)  # 2.1 s after the last sighting


def test_each_sighting_restarts_the_window() -> None:
    dedupe = Deduplicator(window=2.0)
    seen = [dedupe.should_report("LT1:A", t) for t in (0.0, 1.5, 3.0, 4.5, 6.0)]
    assert seen == [True, False, False, False, False]


def test_different_codes_do_not_suppress_each_other() -> None:
    dedupe = Deduplicator(window=2.0)
    assert [dedupe.should_report(text, 1.0) for text in ("LT1:A", "LT1:B", "LT1:A")] == [True, True, False]


def test_zero_window_reports_every_new_instant_but_not_a_code_twice_in_one_frame() -> None:
    dedupe = Deduplicator(window=0.0)
    assert [dedupe.should_report("LT1:A", t) for t in (1.0, 1.0, 1.1)] == [True, False, True]


def test_clock_going_backwards_suppresses_rather_than_repeats() -> None:
    dedupe = Deduplicator(window=2.0)
    assert dedupe.should_report("LT1:A", 100.0)
    assert not dedupe.should_report("LT1:A", 5.0)


def test_memory_is_bounded_by_capacity_and_expiry() -> None:
    dedupe = Deduplicator(window=2.0, capacity=100)
    for index in range(10_000):
        dedupe.should_report(f"LT1:{index}", 0.0)
    assert len(dedupe) == 100
    dedupe.should_report("LT1:late", 10.0)
    assert len(dedupe) == 1  # everything older than the window forgotten


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 1.5)), max_size=60))
def test_a_code_is_reported_exactly_when_unseen_for_longer_than_the_window(steps: list[tuple[str, float]]) -> None:
    dedupe = Deduplicator(window=1.0)
    now, last_seen = 0.0, dict[str, float]()
    for text, gap in steps:
        now += gap
        expected = text not in last_seen or now - last_seen[text] > 1.0
        assert dedupe.should_report(text, now) == expected
        last_seen[text] = now


def test_negative_window_is_refused() -> None:
    with pytest.raises(SettingsError, match="window"):
        Deduplicator(window=-1)


def test_backoff_doubles_up_to_its_cap_and_restarts_after_reset() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_refuses_a_cap_below_its_start() -> None:
    with pytest.raises(SettingsError, match="initial"):
        Backoff(5.0, 1.0)
