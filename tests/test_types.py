"""The type checker passes on the packages and modules that are clean, so they stay clean.

mypy reads its settings from setup.cfg ([mypy]). CLEAN grows as more of the code is
annotated; docs/ARCHITECTURE.md ("Types") says which parts are checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# One annotation away: ``chunks`` in RevocationSet.replace_with_snapshot, a function reworked on
# another branch at the time; once it is annotated, drop this and check "gate" whole.
NOT_YET = frozenset({"gate/cache/revocations.py"})
GATE = tuple(sorted(str(path.relative_to(ROOT)) for path in (ROOT / "gate").rglob("*.py") if str(path.relative_to(ROOT)) not in NOT_YET))
CLEAN = ("protocol", "transport", "hub", "lungta", *GATE)


def test_mypy_finds_no_error_in_the_checked_code() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *CLEAN], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
