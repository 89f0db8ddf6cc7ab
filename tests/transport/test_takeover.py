"""How a link tells another client with its login from a broker that restarts (transport/takeover.py)."""

from __future__ import annotations

from transport.takeover import BACKOFF_MAX_S, SILENT_WINDOW_S, WINDOW_S, TakeoverWatch


class Clock:
    """Monotonic seconds the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_three_silent_closes_each_let_straight_back_in_are_a_takeover():
    clock = Clock()
    watch = TakeoverWatch(clock)
    verdicts = []
    for _ in range(3):
        watch.connected()
        clock.now += 1
        verdicts.append(watch.closed_silently())
    assert verdicts == [False, False, True] and watch.silent_closes == 3


def test_a_broker_that_restarts_is_no_takeover_however_often():
    clock = Clock()
    watch = TakeoverWatch(clock)
    for _ in range(10):
        watch.connected()
        clock.now += 1
        assert not watch.closed_silently()
        watch.connect_failed()  # the broker refuses connects while it starts again
    assert watch.count() == 0


def test_silent_closes_older_than_the_window_are_forgotten():
    clock = Clock()
    watch = TakeoverWatch(clock)
    watch.connected()
    watch.closed_silently()
    watch.connected()
    watch.closed_silently()
    watch.connected()
    clock.now += SILENT_WINDOW_S + 1
    assert not watch.closed_silently(), "two closes ten minutes ago and one now are no pattern"


def test_the_backoff_doubles_with_each_takeover_in_the_hour_up_to_its_limit():
    clock = Clock()
    watch = TakeoverWatch(clock)
    backoffs = []
    for _ in range(6):
        backoffs.append(watch.taken_over())
        clock.now += 60
    assert backoffs == [30, 60, 120, 240, BACKOFF_MAX_S, BACKOFF_MAX_S] and watch.count() == 6
    clock.now += WINDOW_S
    assert watch.count() == 0 and watch.taken_over() == 30, "an hour later a takeover starts over"
