"""Run every benchmark in turn: .venv/bin/python -m bench [--quick] (or: make bench).

The full run takes many minutes (10 million revocations, 360,000 hub events);
``--quick`` runs each benchmark on small sizes in a minute or two, to check
they all still work. Only full runs give the figures for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2

from . import bench_cbor, bench_cli, bench_daemon, bench_decode, bench_realname, bench_revocations, bench_sync, bench_ticket

ROOT = Path(__file__).resolve().parents[1]


def run_decode(quick: bool) -> None:
    """bench_decode pins the process to one core and OpenCV to one thread, as its goals are
    stated; both are undone afterwards so the benchmarks after it get the whole machine."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    threads = cv2.getNumThreads()
    try:
        if quick:
            bench_decode.main(count=12, zxing_rounds=120, pyzbar_rounds=12)
        else:
            bench_decode.main()
    finally:
        cv2.setNumThreads(threads)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def run_hub(quick: bool) -> None:
    """bench_hub reads its options from the command line, so it runs as its own process."""
    options = ["--gates", "5", "--events", "200", "--fanout", "10", "--revocations", "5"] if quick else []
    subprocess.run([sys.executable, "-m", "bench.bench_hub", *options], check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks every benchmark runs, figures not for the record")
    args = parser.parse_args(argv)
    quick = args.quick
    benches: list[tuple[str, Callable[[], None]]] = [
        ("bench_ticket", lambda: bench_ticket.main(rounds=2_000 if quick else 20_000)),
        ("bench_cbor", lambda: bench_cbor.main(rounds=2_000 if quick else 20_000)),
        ("bench_revocations", lambda: bench_revocations.main(["--sizes", "100000"] if quick else [])),
        ("bench_daemon", lambda: bench_daemon.main(["--tickets", "20", "--rounds", "200"] if quick else [])),
        ("bench_decode", lambda: run_decode(quick)),
        ("bench_hub", lambda: run_hub(quick)),
        ("bench_cli", lambda: bench_cli.main(["--rounds", "5", "--count", "1000", "--sheet-count", "20"] if quick else [])),
        ("bench_sync", lambda: bench_sync.main(["--gates", "3", "--admissions", "10"] if quick else [])),
        ("bench_realname", lambda: bench_realname.main(["--rounds", "3", "--cards", "3"] if quick else [])),
    ]
    failed = []
    for name, run in benches:
        # One broken benchmark must not hide the figures of the others: report it in one
        # line, go on, and fail the whole run at the end.
        try:
            run()
        except (Exception, SystemExit) as error:  # noqa: BLE001 - the edge: turned into one line
            failed.append(name)
            print(f"{name}: FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        print(flush=True)
    if failed:
        print(f"bench: {len(failed)} of {len(benches)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
