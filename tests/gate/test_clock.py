"""Trusted time: a clock set back must not be believed, and hub time restores trust."""

from gate.clock import GateClock


class FakeTime:
    def __init__(self, wall: float) -> None:
        self.wall_now, self.mono_now = wall, 1000.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


def test_steady_clock_is_trusted_and_followed():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    t.advance(3600)
    reading = clock.read()
    assert reading.trusted and reading.now == 1_003_600


def test_wall_clock_set_back_beyond_threshold_is_untrusted_and_time_keeps_running():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    clock.read()
    t.wall_now -= 86_400  # someone sets the clock back a day to reuse yesterday's tickets
    t.mono_now += 10
    reading = clock.read()
    assert not reading.trusted
    assert reading.now == 1_000_010  # monotonic progress from the last trusted time, not the forged wall


def test_small_adjustment_within_threshold_stays_trusted():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    t.wall_now -= 20  # NTP stepping a little
    assert clock.read().trusted


def test_restart_with_a_clock_behind_the_persisted_high_water_is_untrusted():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=1_090_000, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    reading = clock.read()
    assert not reading.trusted and reading.now >= 1_090_000


def test_hub_time_restores_trust_and_corrects_the_offset():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=1_090_000, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    clock.sync_to_hub(1_000_500)
    t.advance(100)
    reading = clock.read()
    assert reading.trusted and reading.now == 1_000_600 and reading.offset_to_hub == 500


def test_many_small_steps_back_cannot_walk_the_clock():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    readings = []
    for _ in range(13):  # 290 s back each time, each under the threshold, with a scan in between
        t.wall_now -= 290
        t.mono_now += 1
        readings.append(clock.read())
    assert readings[0].trusted
    assert not readings[-1].trusted
    assert readings[-1].now == 1_000_013  # decisions stay on the expected time, not 63 minutes back


def test_a_forward_jump_is_not_followed_and_the_clock_recovers_when_put_right():
    t = FakeTime(1_000_000)
    clock = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    t.wall_now += 47 * 3600  # tomorrow's tickets must not become valid
    t.advance(5)
    jumped = clock.read()
    assert not jumped.trusted and jumped.now == 1_000_005
    t.wall_now -= 47 * 3600
    t.advance(5)
    put_right = clock.read()
    assert put_right.trusted and put_right.now == 1_000_010
    assert clock.high_water < 1_000_000 + 3600  # the jump left no mark in the persisted lower bound


def test_a_restart_after_the_clock_was_put_right_is_trusted_without_hub_time():
    t = FakeTime(1_000_000)
    first = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    t.wall_now += 86_400  # a day ahead while running
    t.advance(60)
    first.read()
    persisted = first.high_water
    t.wall_now -= 86_400  # put right, then the gate restarts
    second = GateClock(high_water=persisted, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    assert second.read().trusted


def test_readings_carry_milliseconds():
    t = FakeTime(1_000_000.25)
    clock = GateClock(high_water=0, threshold_seconds=300, wall=t.wall, monotonic=t.mono)
    reading = clock.read()
    assert reading.now == 1_000_000 and reading.now_ms == 1_000_000_250
