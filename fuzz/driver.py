"""Running a harness: coverage-guided under atheris, or a plain mutation loop without it.

Every harness module defines ``one_input(data: bytes) -> None`` (raises only
on a finding: an exception escaping the code under test, or a broken
invariant such as a forged ticket granted) and ``seeds() -> list[bytes]``
(real tickets and messages, so the fuzzer starts from the accepted
encoding), and ends with ``if __name__ == "__main__": run(...)``. Then

    python -m fuzz.<harness> -runs=1000000 [-seed=N] [corpus_dir]

runs it under libFuzzer (any libFuzzer flag works), starting from the seeds
written into the corpus directory (a fresh temporary one if none is given).
libFuzzer's closing lines (``Done N runs in S second(s)``, the final stats)
are the record docs/security.md keeps for ``make fuzz``. Real state files a
harness needs (SQLite, revocations) go under $FUZZ_TMP (default: the system
temporary directory); libFuzzer ends the process without Python's atexit,
so ``make fuzz`` removes that directory itself.

Without atheris (it is in the ``test`` extra) the same command runs a plain
loop of byte mutations of the seeds, deterministic for a given -seed: no
coverage feedback, but the same harness and the same findings check.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import re
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

OneInput = Callable[[bytes], None]


class Draw:
    """Values drawn from the front of fuzz bytes; total: past the end every draw is 0 or empty.

    Harnesses use it to turn one byte string into a structured input (a
    topic kind, a clock, a state) so coverage guidance reaches every branch.
    """

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return value

    def integer(self, size: int) -> int:
        """An unsigned integer of ``size`` bytes, big-endian."""
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return int.from_bytes(chunk, "big")

    def choice(self, options: Sequence[object]) -> object:
        return options[self.byte() % len(options)]

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


class FormatOnly(logging.Handler):
    """Formats every record (a broken log call still shows, as ``--- Logging error ---``) and keeps none.

    The code under test logs every refused input; writing millions of those
    lines would measure the terminal, not the parser.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.format(record)
        except Exception:  # logging's own contract: report through handleError, never raise into the caller
            self.handleError(record)


def quiet_logging() -> None:
    logging.basicConfig(level=logging.INFO, handlers=[FormatOnly()], force=True)


def run(name: str, one_input: OneInput, seeds: Callable[[], list[bytes]], argv: list[str] | None = None) -> int:
    """Fuzz ``one_input``; returns the process exit status (0: no crash)."""
    quiet_logging()
    argv = list(sys.argv if argv is None else argv)
    flags = [arg for arg in argv[1:] if arg.startswith("-")]
    corpus = [arg for arg in argv[1:] if not arg.startswith("-")]
    if not corpus:
        corpus = [tempfile.mkdtemp(prefix=f"fuzz-{name}-")]
    _write_seeds(Path(corpus[0]), seeds())
    try:
        import atheris
    except ImportError:
        return _plain_loop(name, one_input, [p.read_bytes() for p in Path(corpus[0]).iterdir() if p.is_file()], flags)
    return _atheris(name, one_input, atheris, [argv[0], *flags, *corpus])


def _write_seeds(directory: Path, seeds: list[bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds):
        (directory / f"seed-{index:03d}").write_bytes(seed)


def _flag(flags: list[str], name: str, default: int) -> int:
    for flag in flags:
        match = re.fullmatch(rf"-{name}=(\d+)", flag)
        if match:
            return int(match.group(1))
    return default


class _Counter:
    """Counts inputs and notes the start, for the summary line."""

    def __init__(self, one_input: OneInput) -> None:
        self.one_input, self.inputs, self.start = one_input, 0, time.monotonic()

    def __call__(self, data: bytes) -> None:
        self.inputs += 1
        self.one_input(data)

    def summary(self, name: str, crashes: int) -> str:
        seconds = time.monotonic() - self.start
        return f"fuzz {name}: inputs={self.inputs} seconds={seconds:.0f} rate={self.inputs / max(seconds, 1e-9):.0f}/s crashes={crashes}"


def _atheris(name: str, one_input: OneInput, atheris, argv: list[str]) -> int:
    """libFuzzer ends the process itself (exit status 0, or 1 with the crash input saved and its traceback).

    Its last lines are the record: ``Done N runs in S second(s)`` and, with
    the -print_final_stats=1 added here, ``stat::number_of_executed_units``.
    """
    print(f"fuzz {name}: atheris {getattr(atheris, '__version__', '')} libFuzzer, corpus {argv[-1]}", file=sys.stderr, flush=True)
    _instrument_ours(atheris)
    atheris.Setup([*argv[:1], "-print_final_stats=1", *argv[1:]], one_input)
    atheris.Fuzz()
    return 0


def mutations(seeds: list[bytes], runs: int, seed: int = 0) -> Iterator[bytes]:
    """The seeds, then random byte mutations of them (flips, inserts, deletes, splices, CBOR heads)."""
    rng = random.Random(seed)
    pool = seeds or [b""]
    for index in range(runs):
        yield pool[index] if index < len(pool) else _mutate(rng, rng.choice(pool), rng.choice(pool))


OUR_PACKAGES = ("protocol", "gate", "hub", "lungta")


def _instrument_ours(atheris) -> None:
    """Coverage for the project's own functions only: instrumenting every loaded function
    (atheris.instrument_all: ~4,000 with the stdlib) takes minutes on a loaded machine."""
    functions = [obj for obj in gc.get_objects() if isinstance(obj, types.FunctionType) and str(getattr(obj, "__module__", "")).split(".")[0] in OUR_PACKAGES]
    print(f"INFO: instrumenting {len(functions)} functions of {', '.join(OUR_PACKAGES)}", file=sys.stderr, flush=True)
    for function in functions:
        atheris.instrument_func(function)


def _plain_loop(name: str, one_input: OneInput, seeds: list[bytes], flags: list[str]) -> int:
    counter = _Counter(one_input)
    for data in mutations(seeds, _flag(flags, "runs", 10_000), _flag(flags, "seed", 0)):
        try:
            counter(data)
        except BaseException:  # the finding itself: report it with its input, as libFuzzer would
            traceback.print_exc()
            print(f"crash input (hex): {data.hex()}", file=sys.stderr)
            print(counter.summary(name, 1), file=sys.stderr, flush=True)
            return 1
    print(f"plain loop (atheris not installed): {counter.summary(name, 0)}", file=sys.stderr, flush=True)
    return 0


def _mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        action = rng.randrange(5)
        position = rng.randint(0, len(out))
        if action == 0 and out:
            out[min(position, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            out.insert(position, rng.randrange(256))
        elif action == 2 and out:
            del out[min(position, len(out) - 1)]
        elif action == 3:
            out[position:position] = other[rng.randint(0, len(other)):][:rng.randint(0, 16)]
        else:
            out[position:position + 1] = bytes([rng.choice((0x00, 0x17, 0x18, 0x1f, 0x7f, 0x80, 0x9f, 0xbf, 0xd8, 0xf5, 0xf9, 0xff))])
    return bytes(out)


def seeded(seed: int) -> bytes:
    """32 bytes derived from ``seed``: harness keys are fixed so a crash input replays."""
    return random.Random(seed).randbytes(32)


def scratch_dir(prefix: str) -> Path:
    """A fresh directory for a harness's real SQLite/revocation files, under $FUZZ_TMP when set."""
    root = os.environ.get("FUZZ_TMP")
    if root:
        os.makedirs(root, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"fuzz-{prefix}-", dir=root))
