"""The simulated turnstile: the same turnstile code over fake lines, logged as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import pytest

from gate.rules import Direction
from gate.turnstile import SimSettings, SimTurnstile, TurnstileSettings, build_turnstile


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., SimTurnstile]]:
    built: list[SimTurnstile] = []

    def make(**sim: object) -> SimTurnstile:
        settings = TurnstileSettings(kind="sim", pulse_seconds=0.02, passage_timeout_seconds=0.15,
                                     signal_seconds=0.02, beep_seconds=0.01,
                                     sim=SimSettings(output_path=str(tmp_path / "turnstile.jsonl"),
                                                     passage_delay_seconds=0.01, **sim))  # type: ignore[arg-type]
        turnstile = build_turnstile(settings)
        assert isinstance(turnstile, SimTurnstile)
        built.append(turnstile)
        return turnstile

    yield make
    for turnstile in built:
        turnstile.shutdown()


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_simulated_group_passes_and_every_pulse_and_passage_is_logged(make_sim, tmp_path: Path) -> None:
    turnstile = make_sim()
    result = turnstile.admit("entry", 3)
    assert (result.passed, result.timed_out) == (3, False)
    logged = records(tmp_path / "turnstile.jsonl")
    pulses = [r for r in logged if r["event"] == "relay" and r["direction"] == "entry" and r["on"]]
    passages = [r["passed"] for r in logged if r["event"] == "passage"]
    assert len(pulses) == 3 and passages == [1, 2, 3]
    assert logged[-1]["event"] == "admit_done" and logged[-1]["passed"] == 3
    assert all(isinstance(r["time"], float) for r in logged)
    turnstile.line("entry_relay").assert_states([False, True, False, True, False, True, False])


def test_when_nobody_walks_the_admission_times_out_for_rollback(make_sim, tmp_path: Path) -> None:
    turnstile = make_sim(persons_passing=0)
    result = turnstile.admit("entry", 1)
    assert (result.passed, result.timed_out, result.missing) == (0, True, 1)
    done = records(tmp_path / "turnstile.jsonl")[-1]
    assert done == {**done, "event": "admit_done", "passed": 0, "expected": 1, "reason": "timed out"}


def test_only_part_of_a_group_walks(make_sim) -> None:
    turnstile = make_sim(persons_passing=1)
    result = turnstile.admit("exit", 3)
    assert (result.passed, result.missing) == (1, 2)
    turnstile.line("exit_relay").assert_states([False, True, False, True, False])


def test_the_simulated_fire_alarm_and_shutdown_are_logged(make_sim, tmp_path: Path) -> None:
    turnstile = make_sim()
    turnstile.line("emergency_input").drive_high()
    assert turnstile.line("entry_relay").wait_for(lambda states: states[-1].high)
    state = turnstile.state()
    assert (state.kind, state.emergency) == ("sim", True)
    turnstile.shutdown()
    logged = records(tmp_path / "turnstile.jsonl")
    assert [r["event"] for r in logged if r["event"] in ("emergency", "shutdown")] == ["emergency", "shutdown"]
    assert logged[-1] == {**logged[-1], "on": True, "reason": "fail-secure"}  # emergency beats fail-secure


def test_a_sim_without_an_output_file_still_runs() -> None:
    turnstile = build_turnstile(TurnstileSettings(kind="sim", pulse_seconds=0.01, passage_timeout_seconds=0.1,
                                                  sim=SimSettings(passage_delay_seconds=0.0)))
    try:
        assert turnstile.admit("entry", 2).passed == 2
    finally:
        turnstile.shutdown()


def test_the_engine_direction_enum_is_accepted(make_sim, tmp_path: Path) -> None:
    turnstile = make_sim()
    assert turnstile.admit(Direction.EXIT, 1).passed == 1
    assert {r["direction"] for r in records(tmp_path / "turnstile.jsonl") if r["event"] == "admit"} == {"exit"}
