"""CLI start-up against a bare ``python -c "import nacl.signing"``, and ``ticket batch`` speed.

Goal (issue 13.6): ``lungta --help`` and ``lungta ticket issue`` within 3x
the bare PyNaCl import, measured in the same run with interleaved rounds;
``ticket batch`` mints thousands of tickets per second (sheets apart: the
QR encoder is the slow part, measured separately).

Run: .venv/bin/python -m bench.bench_cli [--rounds N] [--count N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .stats import machine, percentile

GOAL_RATIO = 3.0


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def startup(rounds: int, key: Path) -> dict[str, list[float]]:
    """Wall time of each process, the commands interleaved round by round so load hits all alike."""
    commands = {
        "python -c 'import nacl.signing'": [sys.executable, "-c", "import nacl.signing"],
        "lungta --help": [sys.executable, "-m", "lungta", "--help"],
        "lungta ticket issue": [sys.executable, "-m", "lungta", "ticket", "issue", "--key", str(key), "--site", "potala"],
    }
    results: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():
        _timed(argv)  # warm the page cache
    for _ in range(rounds):
        for name, argv in commands.items():
            results[name].append(_timed(argv))
    return results


def batch_rate(key: Path, count: int, directory: Path, sheets: bool) -> tuple[float, float]:
    """(tickets per second for the whole process, per second of minting alone) for one batch."""
    out = directory / f"batch-{count}-{sheets}"
    argv = [sys.executable, "-m", "lungta", "ticket", "batch", "--key", str(key), "--site", "potala", "--count", str(count), "--out", str(out)]
    seconds = _timed(argv + ([] if sheets else ["--no-sheets"]))
    record = json.loads((out / "batch.json").read_text())
    return count / seconds, count / max(record["mint_seconds"], 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--count", type=int, default=10_000, help="tickets in the batch without sheets")
    parser.add_argument("--sheet-count", type=int, default=200, help="tickets in the batch with sheets")
    args = parser.parse_args(argv)
    print(f"bench_cli: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        subprocess.run([sys.executable, "-m", "lungta", "keygen", "--kid", "bench", "--out", str(directory)], check=True, stdout=subprocess.DEVNULL)
        key = directory / "bench.key"
        results = startup(args.rounds, key)
        bare = statistics.median(results["python -c 'import nacl.signing'"])
        worst = 0.0
        for name, samples in results.items():
            ratio = statistics.median(samples) / bare
            worst = max(worst, ratio)
            print(f"  {name:34s} median {statistics.median(samples) * 1000:7.1f} ms  p90 {percentile(samples, 0.9) * 1000:7.1f} ms  {ratio:4.2f}x bare")
        print(f"  goal: within {GOAL_RATIO}x the bare import: {'met' if worst <= GOAL_RATIO else 'MISSED'} (worst {worst:.2f}x)")
        whole, minting = batch_rate(key, args.count, directory, sheets=False)
        print(f"  ticket batch --count {args.count} --no-sheets: {whole:8.0f} tickets/s for the whole command, {minting:8.0f}/s minting")
        whole, minting = batch_rate(key, args.sheet_count, directory, sheets=True)
        print(f"  ticket batch --count {args.sheet_count} with sheets: {whole:8.0f} tickets/s for the whole command (QR encoding)")
    return 0 if worst <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
