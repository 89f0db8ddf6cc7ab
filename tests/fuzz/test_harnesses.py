"""A bounded run of every fuzz harness in the suite; ``make fuzz`` runs them long under atheris.

Each harness takes its seeds (genuine tickets and messages, issue 10's
hostile codes) and a few hundred deterministic mutations of them in this
process: a finding (an exception escaping the code under test, a broken
invariant) fails the test with the input. One harness also runs under
atheris's libFuzzer in a subprocess, when atheris is installed, to keep the
``python -m fuzz.<harness>`` path working.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.util import find_spec

import pytest

from fuzz.driver import mutations, quiet_logging

HARNESSES = ("ticket_text", "cose_bytes", "signed_claims", "hub_inbound", "gate_inbox", "trust_list")
RUNS = 400


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_survives_its_seeds_and_mutations(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FUZZ_TMP", str(tmp_path))
    harness = importlib.import_module(f"fuzz.{name}")
    quiet_logging()
    seeds = harness.seeds()
    assert seeds, "a harness starts from real inputs"
    for data in mutations(seeds, RUNS, seed=len(name)):
        try:
            harness.one_input(data)
        except BaseException as finding:
            raise AssertionError(f"fuzz.{name} finding on input {data.hex()}: {finding!r}") from finding


@pytest.mark.skipif(find_spec("atheris") is None, reason="atheris is not installed (pip install -e '.[test]')")
def test_a_harness_runs_under_atheris(tmp_path):
    corpus = tmp_path / "corpus"
    result = subprocess.run([sys.executable, "-m", "fuzz.cose_bytes", "-runs=2000", "-seed=1", str(corpus)], capture_output=True, text=True, errors="replace", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 2000 runs" in result.stderr
    assert any(path.name.startswith("seed-") for path in corpus.iterdir())
