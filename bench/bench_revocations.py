"""Revocation set at 1 M and 10 M entries: disk, memory, lookups, cold start, delta, compaction.

Run: .venv/bin/python -m bench.bench_revocations [--sizes 1000000,10000000] [--dir DIR]

Stores are built from random keys with numpy (plus a few thousand real
ticket ids, hashed as the gate hashes them, so hits can be looked up by id).
Memory and cold start are measured in a fresh child process with the base
file evicted from the page cache (posix_fadvise DONTNEED on that file only),
so the first lookups really come from disk. Lookup times are interleaved
with a bare BLAKE2b of the id (the irreducible part of a lookup) and a dict
lookup, in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from gate.cache.revocations import RECORD_DTYPE, RevocationSet, revocation_key

from .stats import interleaved, machine, percentile, sample

HIT_IDS = 20_000
DELTA = 10_000
DELTAS = 5
NOW = int(time.time())


def rss_kib() -> dict[str, int]:
    fields = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0])
    return fields


def build(root: Path, size: int, rng: np.random.Generator) -> tuple[list[bytes], Path]:
    """Records of ``size`` random entries in a file; returns the real ticket ids among them."""
    hits = [rng.bytes(16) for _ in range(HIT_IDS)]
    records = np.empty(size, RECORD_DTYPE)
    records["key"][:HIT_IDS] = [revocation_key(ticket_id) for ticket_id in hits]
    records["key"][HIT_IDS:] = np.frombuffer(rng.bytes(12 * (size - HIT_IDS)), "S12")
    records["expiry"] = rng.integers(NOW + 3_600, NOW + 400 * 86_400, size=size, dtype=np.uint32)
    path = root / f"records-{size}.bin"
    records.tofile(path)
    return hits, path


def install(directory: Path, records_path: Path) -> None:
    """Child process: install the records as a hub snapshot; prints time and extra peak memory."""
    records = np.fromfile(records_path, RECORD_DTYPE)
    loaded = rss_kib()["VmRSS"]
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")  # restart the VmHWM peak from here
    with RevocationSet.open(directory, auto_compact=False) as store:
        start = time.perf_counter()
        store.replace_with_snapshot_records(1, records)
        elapsed = time.perf_counter() - start
    print(json.dumps({"install": elapsed, "install_peak": rss_kib()["VmHWM"] - loaded}))


def probe(directory: Path, hits_path: Path) -> None:
    """Child process: cold start, memory and lookup latency; prints one JSON line."""
    data = hits_path.read_bytes()
    hits = [data[offset : offset + 16] for offset in range(0, len(data), 16)]
    misses = [os.urandom(16) for _ in range(HIT_IDS)]
    base = directory / "base.rev"
    fd = os.open(base, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    before = rss_kib()
    start = time.perf_counter()
    store = RevocationSet.open(directory)
    assert store.is_revoked(hits[0])
    cold = time.perf_counter() - start
    after_open = rss_kib()
    first_touch = sample(lambda it=iter(hits[1:10_001]): store.is_revoked(next(it)), 10_000)
    after_lookups = rss_kib()
    store.close()
    start = time.perf_counter()
    store = RevocationSet.open(directory)
    store.is_revoked(hits[0])
    warm = time.perf_counter() - start
    with open(base, "rb") as handle:  # every page cached, as on a gate that has run for a while
        while handle.read(1 << 24):
            pass
    table = {revocation_key(ticket_id): 0 for ticket_id in hits}
    keys = list(table)
    hit_ids, miss_ids, key_cycle, id_cycle = itertools.cycle(hits), itertools.cycle(misses), itertools.cycle(keys), itertools.cycle(misses)
    blake2b = hashlib.blake2b
    results = interleaved(
        {
            "hit": lambda: store.is_revoked(next(hit_ids)),
            "miss": lambda: store.is_revoked(next(miss_ids)),
            "blake2b": lambda: blake2b(next(id_cycle), digest_size=12).digest(),
            "dict": lambda: next(key_cycle) in table,
        },
        200_000,
    )
    store.close()

    def kib(after: dict[str, int], name: str) -> int:
        return after[name] - before[name]

    figures = {
        "cold_start": cold, "warm_start": warm,
        "rss_open": [kib(after_open, "RssAnon"), kib(after_open, "RssFile")],
        "rss_10k": [kib(after_lookups, "RssAnon"), kib(after_lookups, "RssFile")],
        "first_touch": [statistics.median(first_touch), percentile(first_touch, 0.99)],
    }
    for name, samples in results.items():
        figures[name] = [statistics.median(samples), percentile(samples, 0.99)]
    print(json.dumps(figures))


def apply_random_delta(store: RevocationSet) -> float:
    entries = [(os.urandom(16), NOW + 86_400) for _ in range(DELTA)]
    start = time.perf_counter()
    store.apply_delta(store.sequence + 1, entries)
    return time.perf_counter() - start


def child(option: str, *paths: Path) -> dict[str, object]:
    """Run this module in a fresh process (true cold start, own memory figures); its last line is JSON."""
    command = [sys.executable, "-m", "bench.bench_revocations", option, *map(str, paths)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(output.stdout.splitlines()[-1])


def measure(size: int, root: Path) -> dict[str, object]:
    directory = root / f"revocations-{size}"
    shutil.rmtree(directory, ignore_errors=True)
    rng = np.random.default_rng(size)
    hits, records_path = build(root, size, rng)
    figures = child("--install", directory, records_path)
    records_path.unlink()
    disk = sum(path.stat().st_size for path in directory.iterdir())
    hits_path = root / f"hits-{size}.bin"
    hits_path.write_bytes(b"".join(hits))
    figures.update(child("--probe", directory, hits_path))
    figures.update(size=size, disk=disk)
    with RevocationSet.open(directory, overlay_limit=10 * DELTA * DELTAS, auto_compact=False) as store:
        apply_times: list[float] = []
        for _ in range(DELTAS):
            apply_times.append(apply_random_delta(store))
        start = time.perf_counter()
        store.compact()
        figures["compact"] = time.perf_counter() - start
        for _ in range(DELTAS):
            apply_times.append(apply_random_delta(store))
        figures["delta"] = [statistics.median(apply_times), max(apply_times)]
        during: list[float] = []
        start = time.perf_counter()
        compactor = threading.Thread(target=store.compact)
        compactor.start()
        hit_ids = itertools.cycle(hits)
        while compactor.is_alive():  # a reader thread that never pauses: the worst case for the GIL
            during.extend(sample(lambda: store.is_revoked(next(hit_ids)), 100))
        compactor.join()
        figures["compact_busy"] = time.perf_counter() - start
        figures["during_compaction"] = [statistics.median(during), percentile(during, 0.99)]
        assert len(store) == size + 2 * DELTA * DELTAS
    shutil.rmtree(directory)
    hits_path.unlink()
    return figures


def us(pair: object) -> str:
    median, p99 = pair  # type: ignore[misc]
    return f"{median * 1e6:.1f} / {p99 * 1e6:.1f} us"


def report(all_figures: list[dict]) -> None:
    rows = [
        ("on-disk size", lambda f: f"{f['disk'] / 1e6:.1f} MB ({f['disk'] / f['size']:.2f} B/entry)"),
        ("RSS anon/file, open+1st lookup", lambda f: f"{f['rss_open'][0] / 1024:.1f} / {f['rss_open'][1] / 1024:.1f} MiB"),
        ("RSS anon/file, +10k lookups", lambda f: f"{f['rss_10k'][0] / 1024:.1f} / {f['rss_10k'][1] / 1024:.1f} MiB"),
        ("cold start, evicted (open+lookup)", lambda f: f"{f['cold_start'] * 1e3:.1f} ms"),
        ("cold start, file cached", lambda f: f"{f['warm_start'] * 1e3:.2f} ms"),
        ("first-touch lookup p50/p99", lambda f: us(f["first_touch"])),
        ("hit lookup p50/p99", lambda f: us(f["hit"])),
        ("miss lookup p50/p99", lambda f: us(f["miss"])),
        ("  bare blake2b p50/p99", lambda f: us(f["blake2b"])),
        ("  bare dict lookup p50/p99", lambda f: us(f["dict"])),
        ("  hit median / blake2b median", lambda f: f"{f['hit'][0] / f['blake2b'][0]:.2f}x"),
        (f"{DELTA:,}-entry delta, fsync'ed", lambda f: f"{f['delta'][0] * 1e3:.1f} ms (max {f['delta'][1] * 1e3:.1f})"),
        (f"compaction (+{DELTA * DELTAS // 1000}k overlay), idle", lambda f: f"{f['compact']:.2f} s"),
        ("  same, beside a busy reader thread", lambda f: f"{f['compact_busy']:.2f} s"),
        ("  that reader's hit p50/p99", lambda f: us(f["during_compaction"])),
        ("snapshot install (hashed records)", lambda f: f"{f['install']:.2f} s, +{f['install_peak'] / 1024:.0f} MiB peak"),
    ]
    print(f"# bench_revocations: {machine()}")
    print(f"{'entries':34}" + "".join(f"{f['size']:>28,}" for f in all_figures))
    for name, cell in rows:
        print(f"{name:34}" + "".join(f"{cell(f):>28}" for f in all_figures))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated entry counts")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the stores (default: a temporary directory)")
    parser.add_argument("--probe", nargs=2, type=Path, metavar=("STORE", "HITS"), help=argparse.SUPPRESS)
    parser.add_argument("--install", nargs=2, type=Path, metavar=("STORE", "RECORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe or args.install:
        (probe if args.probe else install)(*(args.probe or args.install))
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-revocations-") as root:
        report([measure(int(size), Path(root)) for size in args.sizes.split(",")])


if __name__ == "__main__":
    main()
