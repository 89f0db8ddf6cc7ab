"""The type checker passes on every runtime package (protocol, transport, hub, lungta, gate), so they stay clean.

mypy reads its settings from setup.cfg ([mypy]); testkit, bench and fuzz are not checked;
docs/ARCHITECTURE.md ("Types") says so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLEAN = ("protocol", "transport", "hub", "lungta", "gate")


def test_mypy_finds_no_error_in_the_checked_code() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *CLEAN], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
