"""The hub's live capacity: gates of one scan a second plus heartbeats, ramped until the hub falls behind.

    python -m bench.bench_capacity [--gates 100,200,400,600,800] [--seconds 20] [--dashboards off,0,5]

This is the load a site really puts on the hub, not a drain of queued
batches (bench_hub): every simulated gate (SimGate, in worker processes)
uploads each admission in its own message, one a second, and a heartbeat
every 10 s; Mosquitto runs with the site ACL and the hub in its own process
(console off). Each step measures, while the load runs:

- the hub's CPU seconds per 1,000 events stored (stable on a shared machine,
  where latencies are not) and the events per second it stored;
- the used-mark relay (a probe gate's admission until another gate has
  verified the used mark the hub relays), p50 / p95.

The knee is the first step where the hub stores less than 95 % of what the
gates send or the relay p95 passes 100 ms. On this box the broker, the
simulated gates and the hub share two cores, so the knee is a floor; the
projection "gates per hub core" (1,000,000 / CPU-ms per 1,000 events) says
what one core given to the hub alone would carry. The bare limit in the same
run is the smallest step's relay: the relay's cost with the hub idle.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from nacl.signing import SigningKey

from bench.bench_console import cost_round
from bench.stats import machine

RELAY_P95_LIMIT_MS = 100.0
KEEP_UP_SHARE = 0.95


def step(root: Path, key: SigningKey, gates: int, seconds: float, dashboards: int | None = None) -> dict:
    """One load level: what the hub stores and how fast a used mark still travels.

    ``dashboards``: None, console off; 0, console on with nobody watching; N, N dashboards streaming every snapshot.
    """
    name = f"gates-{gates}-" + ("off" if dashboards is None else f"dash{dashboards}")
    result = cost_round(root / name, key, gates, seconds, console=dashboards is not None, dashboards=dashboards or 0)
    offered = gates + 10  # the load's gates at 1/s, plus the probe's ten a second
    result["offered_per_s"] = offered
    result["kept_up"] = result["events_per_s"] >= KEEP_UP_SHARE * offered
    result["gates_per_hub_core"] = round(1_000_000 / max(0.1, result["cpu_ms_per_1000_events"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", default="100,200,400,600,800", help="comma-separated gate counts, ascending")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per step")
    parser.add_argument("--dashboards", default="off", help="comma-separated conditions, interleaved at each step: off (console off), 0, 5 (dashboards open)")
    args = parser.parse_args()
    key = SigningKey.generate()
    conditions = [None if part == "off" else int(part) for part in args.dashboards.split(",")]
    print(f"# {machine()}")
    knees: dict[int | None, int | None] = {condition: None for condition in conditions}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        for gates in (int(part) for part in args.gates.split(",")):
            for condition in [c for c in conditions if knees[c] is None]:
                result = step(Path(tmp), key, gates, args.seconds, condition)
                print(f"step: {json.dumps(result)}", flush=True)
                if not result["kept_up"] or result["relay_p95_ms"] > RELAY_P95_LIMIT_MS:
                    knees[condition] = gates
            if all(knee is not None for knee in knees.values()):
                break
    for condition, knee in knees.items():
        label = "console off" if condition is None else f"console on, {condition} dashboards"
        print(f"knee ({label}): {knee if knee is not None else 'not reached'} gates (first step behind or relay p95 > {RELAY_P95_LIMIT_MS:.0f} ms)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
