"""Partitions on a live site: how soon a gate notices a cut, how soon it catches up after one.

    python -m bench.bench_faults [--partition-seconds 300] [--revocations 10000] [--per-delta 1]

Needs root (network namespaces) and the fault harness (testkit/faults).

1. *Time to notice a cut.* A gate with ``offline_policy = "deny"`` is cut from the
   site (silently: its link dies and TCP sees nothing; or with a reset), then
   shown a fresh single-entry ticket every 0.25 s. It has noticed when it
   refuses one as ``offline_refused``: what a visitor would see. The bare
   limit beside it is the probe interval itself (the resolution).
2. *Catch-up after a partition.* A gate is cut silently for ``--partition-seconds``
   while the operator revokes ``--revocations`` tickets with ``lungta hub revoke``
   (``--per-delta`` ids per call: one call is one delta). After the heal, the
   time until the gate's revocation stream reaches the hub's head seq (goal
   < 5 s). The bare figure is the same for a gate that was never cut, timed from
   the last revoke call.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

from bench.stats import machine
from lungta.cli import main as cli_main
from protocol.ticket import new_ticket_id
from testkit.faults.actions import Faults
from testkit.faults.invariants import hub_rows
from testkit.faults.site import GateProcess, Site
from testkit.waiting import wait_until

PROBE_SECONDS = 0.25
NOTICE_LIMIT_SECONDS = 120.0
CATCH_UP_LIMIT_SECONDS = 120.0
TAIL_BYTES = 64 * 1024
APPLIED = re.compile(r"applied revocations seq (\d+)|installed revocations snapshot as of seq (\d+)")


def time_to_notice(faults: Faults, name: str, silent: bool) -> float | None:
    """Seconds from the cut to the first ``offline_refused``; None if not within the limit."""
    site, gate = faults.site, faults.site.gates[name]
    connections, disconnections = gate.connections(), gate.disconnections()
    faults.cut(name, silent=silent)
    cut_at = time.monotonic()
    try:
        while time.monotonic() - cut_at < NOTICE_LIMIT_SECONDS:
            decided = gate.scan(site.mint())
            if decided.reason == "offline_refused":
                return time.monotonic() - cut_at
            faults.keep_fault_for(PROBE_SECONDS)  # the probe interval: one visitor every 0.25 s
        return None
    finally:
        faults.heal(name)
        # back on the broker: reconnected, or the connection never dropped (the gate noticed the hub's silence instead)
        wait_until(lambda: gate.connections() > connections or gate.disconnections() == disconnections, f"gate {name} back on the broker")


def revoke(site: Site, count: int, per_delta: int) -> None:
    """``lungta hub revoke`` with ``per_delta`` ids per call (the running hub publishes one delta per call).

    The command runs in this process (``lungta.cli.main``, the code behind the
    ``lungta`` executable): 10,000 process starts would time Python's start-up.
    """
    ids = [new_ticket_id().hex() for _ in range(count)]
    for start in range(0, count, per_delta):
        with contextlib.redirect_stdout(io.StringIO()):  # one JSON line per call: not the bench's output
            status = cli_main(["hub", "revoke", "--config", str(site.hub_config), *ids[start:start + per_delta], "--reason", "bench"])
        if status:
            raise SystemExit(f"bench_faults: lungta hub revoke exited with {status}")


def revocation_seq(gate: GateProcess) -> int:
    """The last revocation seq the gate applied, from the tail of its log (delta or snapshot lines)."""
    with gate.log.open("rb") as handle:
        handle.seek(max(0, gate.log.stat().st_size - TAIL_BYTES))
        found = APPLIED.findall(handle.read().decode("utf-8", errors="replace"))
    return max((int(delta or snapshot) for delta, snapshot in found), default=0)


def hub_head(site: Site) -> int:
    rows = hub_rows(site.hub_db, "SELECT last_seq FROM stream_seq WHERE stream = 'revocations'")
    return rows[0][0] if rows else 0


def time_to_head(site: Site, name: str, since: float) -> float | None:
    """Seconds from ``since`` until the gate's revocation stream is at the hub's head; None past the limit."""
    while time.monotonic() - since < CATCH_UP_LIMIT_SECONDS:
        if revocation_seq(site.gates[name]) >= hub_head(site):
            return time.monotonic() - since
        time.sleep(0.05)  # polling interval of the measurement
    return None


def catch_up(faults: Faults, partition_seconds: float, revocations: int, per_delta: int) -> tuple[float | None, float | None, int, int]:
    """(cut gate's catch-up after the heal, online gate's lag after the last revoke, head seq, cut gate's seq at the limit)."""
    site = faults.site
    faults.cut("g2", silent=True)
    cut_at = time.monotonic()
    revoke(site, revocations, per_delta)
    revoked_at = time.monotonic()
    online = time_to_head(site, "g1", revoked_at)
    faults.keep_fault_for(max(0.0, partition_seconds - (time.monotonic() - cut_at)))
    faults.heal("g2")
    healed_at = time.monotonic()
    cut = time_to_head(site, "g2", healed_at)
    return cut, online, hub_head(site), revocation_seq(site.gates["g2"])


def _figure(seconds: float | None, limit: float) -> str:
    return f"{seconds:.2f} s" if seconds is not None else f"not within {limit:.0f} s"


def main(partition_seconds: float = 300.0, revocations: int = 10_000, per_delta: int = 1) -> None:
    print(f"bench_faults on {machine()}")
    directory = Path(tempfile.mkdtemp(prefix="lungta-bench-faults-"))
    site = Site(directory / "site", offline_policy="deny")
    faults = Faults(site)
    try:
        site.start()
        for silent in (False, True):
            seconds = time_to_notice(faults, "g3", silent)
            print(f"time to notice a cut {'silent    ' if silent else 'with reset'}: {_figure(seconds, NOTICE_LIMIT_SECONDS)} (probe interval {PROBE_SECONDS} s; goal < 5 s)")
        cut, online, head, reached = catch_up(faults, partition_seconds, revocations, per_delta)
        print(f"catch-up after a {partition_seconds:.0f} s partition with {revocations} revocations ({per_delta} per delta, head seq {head}): "
              f"{_figure(cut, CATCH_UP_LIMIT_SECONDS)} after the heal (goal < 5 s; gate at seq {reached}); a gate never cut: {_figure(online, CATCH_UP_LIMIT_SECONDS)} after the last revoke")
    finally:
        site.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_faults", description=__doc__.splitlines()[0])
    parser.add_argument("--partition-seconds", type=float, default=300.0)
    parser.add_argument("--revocations", type=int, default=10_000)
    parser.add_argument("--per-delta", type=int, default=1)
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_faults: needs root (network namespaces)")
    main(arguments.partition_seconds, arguments.revocations, arguments.per_delta)
