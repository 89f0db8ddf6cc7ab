"""Gate state at scale: opening a state with 1 M usage rows of expired tickets, and pruning them.

Goal (issue 11.9): such a state opens in under 1 s with RSS within 10 MiB of an
empty one (the old store loaded every ticket id into a set: ~5 s, 82 MiB).
Each open runs in a fresh process, so its RSS is the open's own; the bare
limit beside it is sqlite3.connect + one indexed lookup on the same file,
and "all-ids" is what the store did before (every ticket id into a set).
"checked" adds the start-up check the daemon runs (SQLite quick_check, schema).

    python -m bench.bench_state [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gate.cache.state import GateStore

from .stats import machine

EXPIRED = 1_700_000_000  # 2023: every row is long past its ticket's validity
BATCH = 100_000


def build(directory: Path, rows: int) -> None:
    """A state holding ``rows`` usage rows of distinct expired tickets, as a busy gate accumulates them."""
    with GateStore.open(directory, synchronous="OFF") as store, store.transaction() as db:
        store.raise_high_water(db, int(time.time()))  # a gate that ran has a lower bound for its clock
        for start in range(0, rows, BATCH):
            db.executemany(
                "INSERT INTO usage(ticket_id, zone, day, gate, entries, exits, last_at, expires) VALUES (?,?,?,?,1,0,?,?)",
                ((i.to_bytes(12, "big"), "main", "2023-11-14", f"gate-{i % 8}", EXPIRED - 3600, EXPIRED) for i in range(start, min(rows, start + BATCH))),
            )


CHILD = """
import json, resource, sys, time, sqlite3
from pathlib import Path
mode, directory = sys.argv[1], Path(sys.argv[2])
from gate.cache.state import GateStore
from datetime import date
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if mode == "bare":
    db = sqlite3.connect(directory / "state.sqlite3")
    db.execute("SELECT 1 FROM usage WHERE ticket_id=? LIMIT 1", (b"x",)).fetchone()
elif mode == "all-ids":  # what the store did before: every ticket id into a set at open
    db = sqlite3.connect(directory / "state.sqlite3")
    ids = {row[0] for row in db.execute("SELECT DISTINCT ticket_id FROM usage")}
else:
    store = GateStore.open(directory, check=(mode == "checked"))
    store.usage(b"x" * 12, "main", date(2026, 11, 28))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_before_kib": before}))
"""


def measure(mode: str, directory: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(directory)], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def prune_all(directory: Path) -> tuple[int, float, float]:
    """(rows pruned, seconds in total, worst batch seconds) in the daemon's batches of 1,000."""
    with GateStore.open(directory) as store:
        total, worst, start = 0, 0.0, time.perf_counter()
        while True:
            batch_start = time.perf_counter()
            pruned = store.prune_expired_usage(int(time.time()))
            worst = max(worst, time.perf_counter() - batch_start)
            if not pruned:
                return total, time.perf_counter() - start, worst
            total += pruned


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"bench_state: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        GateStore.open(empty).close()
        start = time.perf_counter()
        build(full, args.rows)
        size = (full / GateStore.FILENAME).stat().st_size
        print(f"built {args.rows:,} expired usage rows in {time.perf_counter() - start:.1f} s: {size / 2**20:.1f} MiB")
        for mode in ("bare", "all-ids", "open", "checked"):
            for name, directory in (("empty", empty), (f"{args.rows:,} rows", full)):
                runs = [measure(mode, directory) for _ in range(args.repeat)]
                best = min(runs, key=lambda run: run["seconds"])
                print(f"{mode:8} {name:>15}: open {best['seconds'] * 1000:8.1f} ms (median of {args.repeat}: "
                      f"{sorted(r['seconds'] for r in runs)[len(runs) // 2] * 1000:.1f} ms), peak RSS {best['rss_kib'] / 1024:6.1f} MiB")
        pruned, seconds, worst = prune_all(full)
        print(f"pruned {pruned:,} rows in {seconds:.1f} s, batches of 1,000, worst batch {worst * 1000:.0f} ms")


if __name__ == "__main__":
    main()
