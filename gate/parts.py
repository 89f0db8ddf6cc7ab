"""The shared parts of one gate, opened together from its state directory.

The composition root (lungta/gate_run.py) opens them once and hands each
consumer only what it uses: the validator decides with all four, the hub
sync applies hub messages to the store and the revocation set, sets the
clock from hub time and the hub link from its pings. Nobody reaches for a
part through another object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cache.quarantine import open_state
from .cache.revocations import RevocationSet
from .cache.state import GateStore
from .clock import GateClock
from .health import Alarm, GateHealth
from .hublink import HubLinkState


@dataclass(frozen=True)
class GateParts:
    """``store`` and ``revocations`` hold files open: ``close`` them (once) when the gate stops."""

    store: GateStore
    revocations: RevocationSet
    clock: GateClock
    hub: HubLinkState

    def close(self) -> None:
        self.store.close()
        self.revocations.close()


def open_gate_parts(state_dir: Path, health: GateHealth, clock_threshold_seconds: float = 300.0, clock: GateClock | None = None,
                    hub: HubLinkState | None = None) -> GateParts:
    """The parts over the checked state directory (state.sqlite3 and revocations/).

    A damaged state is quarantined and a new incarnation started
    (gate/cache/quarantine.py); the ``state_reset`` alarm then stays raised
    in ``health`` for the operator. The clock resumes from the lower bound
    the state persisted, unless one is given (tests, ``gate validate --at``).
    """
    store, revocations, report = open_state(state_dir)
    if report is not None:
        health.raise_alarm(Alarm.STATE_RESET, f"state quarantined to {report.moved_to}: {report.reason}")
    if clock is None:
        clock = GateClock(high_water=float(store.get_count("clock_high_water", 0)), threshold_seconds=clock_threshold_seconds)
    return GateParts(store, revocations, clock, hub or HubLinkState())


def apply_hub_time(clock: GateClock, store: GateStore, hub_time: float) -> None:
    """Take fresh, verified hub time (an answer to this gate's own request) as the reference (see GateClock).

    Usage is covered before the clock moves, so a scan in between never
    meets a ticket valid again (the hub moved the clock back) whose usage
    is not in memory; the lower bound is persisted after.
    """
    store.cover_usage_since(int(hub_time))  # an earlier time than the open assumed: older usage matters again
    clock.sync_to_hub(hub_time)
    store.set_meta("clock_high_water", int(clock.high_water))
