"""Timing and reporting shared by every benchmark.

Figures are always reported beside a bare baseline measured in the same run
(interleaved rounds), because these machines are noisy: the ratio is what
carries from one run to the next.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d}"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sample(function: Callable[[], object], rounds: int) -> list[float]:
    """Seconds per call, one sample per call."""
    clock = time.perf_counter
    out = []
    for _ in range(rounds):
        start = clock()
        function()
        out.append(clock() - start)
    return out


def interleaved(functions: dict[str, Callable[[], object]], rounds: int, batch: int = 200) -> dict[str, list[float]]:
    """Sample each function in alternating batches so drift hits all alike."""
    results: dict[str, list[float]] = {name: [] for name in functions}
    for fn in functions.values():
        sample(fn, 50)  # warm caches and lazy imports
    for _ in range(max(1, rounds // batch)):
        for name, fn in functions.items():
            results[name].extend(sample(fn, batch))
    return results


def summary_us(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e6:8.1f} us  p99 {percentile(samples, 0.99) * 1e6:8.1f} us"


def seconds_until(predicate: Callable[[], object], timeout: float, poll: float = 0.01) -> float:
    """Seconds until ``predicate()`` holds, polled every ``poll`` s as a user watching a status would; TimeoutError past ``timeout``.

    The poll interval is the measurement's resolution, not a synchronisation.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(poll)
    return time.monotonic() - start
