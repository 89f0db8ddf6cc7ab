"""``make soak``: hundreds of random fault cycles on one live site, then every invariant.

    python -m testkit.faults.soak --cycles 200 --seed 11 [--check-every 20] [--offline-policy deny] [--faults freeze_broker,cut_hub]

Each cycle lets visitors scan fresh tickets at random gates and injects one
fault at a random moment (SIGKILL of a gate while it decides, of the hub, of
the broker with or without its persistence, a silent cut or a cut with reset
of a gate or of the hub's link to the broker for a random time, the broker
frozen with SIGSTOP for a random time, a clean broker restart), then heals it. Every
``--check-every`` cycles, and at the end, the invariants are checked after the
site has settled. Prints one line per check and a summary: cycles, events at
the hub, violations (the latest per invariant and place). Exit status 1 when there is any violation.
Needs root (namespaces) like the suite.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .actions import Faults
from .invariants import Invariant, Violation, check_site, hub_events
from .site import Site
from testkit.waiting import WaitTimeout

log = logging.getLogger("testkit.faults.soak")


def kill_gate_while_deciding(faults: Faults, rng: random.Random) -> None:
    name = rng.choice(faults.site.gate_names)
    gate = faults.site.gates[name]
    os.write(gate.master, faults.site.mint().encode() + b"\r")
    faults.keep_fault_for(rng.uniform(0.0, 0.3))  # the random moment of the kill
    faults.kill_gate(name)
    faults.restart_gate(name)


def kill_hub(faults: Faults, rng: random.Random) -> None:
    faults.kill_hub()
    scan_some(faults, rng)
    faults.restart_hub()


def kill_broker(faults: Faults, rng: random.Random) -> None:
    faults.kill_broker(keep_persistence=rng.random() < 0.5)
    faults.keep_fault_for(rng.uniform(0.0, 2.0))
    faults.restart_broker()


def restart_broker_cleanly(faults: Faults, rng: random.Random) -> None:
    faults.site.broker.stop()
    faults.timeline.note("broker stopped cleanly")
    faults.restart_broker()


def cut_gate(faults: Faults, rng: random.Random) -> None:
    name = rng.choice(faults.site.gate_names)
    faults.cut(name, silent=rng.random() < 0.5)
    scan_some(faults, rng)
    faults.keep_fault_for(rng.uniform(0.0, 8.0))
    faults.heal(name)


def freeze_broker(faults: Faults, rng: random.Random) -> None:
    faults.freeze_broker()
    scan_some(faults, rng)
    faults.keep_fault_for(rng.uniform(0.0, 8.0))
    faults.thaw_broker()


def cut_hub(faults: Faults, rng: random.Random) -> None:
    faults.cut_hub(silent=rng.random() < 0.5)
    scan_some(faults, rng)
    faults.keep_fault_for(rng.uniform(0.0, 8.0))
    faults.heal_hub()


Fault = Callable[[Faults, random.Random], None]
FAULTS: list[Fault] = [kill_gate_while_deciding, kill_hub, kill_broker, restart_broker_cleanly, cut_gate, freeze_broker, cut_hub]


def scan_some(faults: Faults, rng: random.Random) -> None:
    for _ in range(rng.randrange(1, 4)):
        faults.site.gates[rng.choice(faults.site.gate_names)].scan(faults.site.mint())


def soak(directory: Path, cycles: int, seed: int, check_every: int, offline_policy: str, faults_drawn: Sequence[Fault] = FAULTS) -> tuple[int, int, list[Violation]]:
    """Run the cycles, each drawing one of ``faults_drawn``; returns (cycles done, events at the hub, the latest violation per invariant and place)."""
    rng = random.Random(seed)
    site = Site(directory, offline_policy=offline_policy)
    faults = Faults(site)
    found: dict[tuple[Invariant, str], Violation] = {}  # the latest finding per invariant and place
    done = 0
    try:
        site.start()
        for cycle in range(1, cycles + 1):
            scan_some(faults, rng)
            fault = rng.choice(faults_drawn)
            try:
                fault(faults, rng)
            except WaitTimeout as timeout:  # a daemon that did not come back is a finding, not the end of the soak
                found[(Invariant.DAEMON_RUNNING, fault.__name__)] = Violation(Invariant.DAEMON_RUNNING, fault.__name__, str(timeout)[:400])
                _restore(faults)
            done = cycle
            if cycle % check_every == 0 or cycle == cycles:
                violations = check_site(site, faults.probes)
                found.update({(v.invariant, v.where): v for v in violations})
                print(f"cycle {cycle}: {len(hub_events(site.hub_db))} events at the hub, {len(violations)} violation(s) now", flush=True)
        return done, len(hub_events(site.hub_db)), list(found.values())
    finally:
        faults.undo()
        site.close()


def _restore(faults: Faults) -> None:
    """Bring back whatever a failed fault left down, so the next cycles still test something."""
    site = faults.site
    faults.undo()
    faults.heal_hub()
    if site.broker.process is None:
        site.start_broker()
    if not site.hub.running:
        site.hub.start()
    for name, gate in site.gates.items():
        faults.heal(name)
        if not gate.running:
            gate.start()


def _fault_list(text: str) -> list[Fault]:
    """``--faults kill_hub,cut_hub``: the fault functions named, or an argparse error naming the unknown one."""
    by_name = {fault.__name__: fault for fault in FAULTS}
    unknown = [name for name in text.split(",") if name not in by_name]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault {unknown[0]!r}; one of {', '.join(by_name)}")
    return [by_name[name] for name in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.faults.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--check-every", type=int, default=25)
    parser.add_argument("--offline-policy", choices=["admit_flagged", "deny"], default="admit_flagged")
    parser.add_argument("--faults", type=_fault_list, default=FAULTS, metavar="NAME,...", help=f"draw only these faults (default all: {', '.join(f.__name__ for f in FAULTS)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    directory = Path(tempfile.mkdtemp(prefix="lungta-soak-"))
    started = time.monotonic()
    cycles, events, violations = soak(directory / "site", args.cycles, args.seed, args.check_every, args.offline_policy, args.faults)
    print(f"soak seed={args.seed}: cycles={cycles} events={events} violations={len(violations)} in {time.monotonic() - started:.0f} s (logs and databases in {directory})")
    for violation in violations:
        print(f"  {violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
