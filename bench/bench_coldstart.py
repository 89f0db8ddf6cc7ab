"""Gate cold start: process start to the first decision, as after a power cut or a watchdog restart.

    python -m bench.bench_coldstart [--rounds 10] [--revocations 1000000]

A real ``lungta gate run`` (serial scanner on a pty, the sim turnstile, a
state directory holding ``--revocations`` revoked ids) is started; the
ticket is typed into the pty the moment the scanner reports its port open
(what a visitor waiting at a rebooting gate would do). Measured per round,
from ``Popen``:

- ready: the scanner's port open (interpreter, imports, config, state, revocations);
- first decision: the visitor's GRANT line.

The bare limits in the same run, interleaved: ``python -c pass`` and
``python -c "import nacl.signing"`` (an interpreter that can verify a
signature at all), each start to exit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey

from bench.stats import machine, percentile
from gate.cache.quarantine import REVOCATIONS
from gate.cache.revocations import RevocationSet
from protocol.keys import write_key_pair
from testkit.live_gate import GateProcess, write_gate_config
from testkit.ptys import RawPty
from testkit.tickets import live_ticket


def _bare(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def _gate_round(directory: Path, trust: Path, state: Path, key: SigningKey) -> tuple[float, float]:
    scanner = RawPty()
    try:
        config = write_gate_config(directory, trust, scanner.port, state)
        start = time.perf_counter()
        gate = GateProcess(config)
        try:
            gate.wait_ready(scanner.port)
            ready = time.perf_counter() - start
            scanner.scan(live_ticket(key))
            line = gate.wait_line("visitor ")
            decided = time.perf_counter() - start
            if "GRANT" not in line:
                raise RuntimeError(f"the cold gate did not grant a valid ticket: {line}")
        finally:
            gate.stop()
        return ready, decided
    finally:
        scanner.close()


def _seed_revocations(state: Path, count: int) -> None:
    """A state directory whose revocation set already holds ``count`` ids, as a gate's after a season."""
    state.mkdir(parents=True, exist_ok=True)
    revocations = RevocationSet.open(state / REVOCATIONS)
    expires = int(time.time()) + 365 * 86_400
    try:
        batch = 100_000
        for start in range(0, count, batch):
            revocations.apply_delta(start // batch + 1, [(i.to_bytes(16, "big"), expires) for i in range(start, min(count, start + batch))])
        revocations.compact()
    finally:
        revocations.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--revocations", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"# {machine()}")
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        root = Path(tmp)
        _, trust = write_key_pair(key, root / "issuer", "sales")
        state = root / "state"
        _seed_revocations(state, args.revocations)
        ready, decided, bare_pass, bare_nacl = [], [], [], []
        for index in range(args.rounds):
            bare_pass.append(_bare("pass"))
            bare_nacl.append(_bare("import nacl.signing"))
            directory = root / f"round-{index}"
            directory.mkdir()
            first_ready, first_decision = _gate_round(directory, trust, state, key)
            ready.append(first_ready)
            decided.append(first_decision)
    nacl = percentile(bare_nacl, 0.5)
    for name, samples in (("python -c pass", bare_pass), ("python -c 'import nacl.signing'", bare_nacl), ("gate start to scanner ready", ready), ("gate start to first decision", decided)):
        print(f"{name:34s} p50 {percentile(samples, 0.5) * 1e3:7.0f} ms  max {max(samples) * 1e3:7.0f} ms  ({percentile(samples, 0.5) / nacl:.1f}x import nacl.signing)")
    print(f"revocations in the state: {args.revocations:,}; rounds: {args.rounds}")


if __name__ == "__main__":
    main()
