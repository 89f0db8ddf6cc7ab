"""The type checker passes on the packages and modules that are clean, so they stay clean.

mypy reads its settings from setup.cfg ([mypy]). CLEAN grows as more of the code is
annotated; docs/ARCHITECTURE.md ("Types") says which parts are checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLEAN = (
    "protocol",
    "transport",
    "hub/config.py",
    "hub/store.py",
    "hub/sqlite_store.py",
    "hub/sqlite_tables.py",
    "hub/sqlite_events.py",
    "hub/sqlite_outbox.py",
    "hub/sqlite_health.py",
    "hub/sqlite_quotas.py",
    "hub/quota.py",
    "hub/quota_text.py",
    "hub/quota_reports.py",
    "hub/service.py",
    "hub/console/actions.py",
    "lungta/config.py",
    "lungta/config_tables.py",
    "lungta/paths.py",
    "gate/scanner",
    "gate/idcard",
    "gate/realname",
    "gate/turnstile",
    "gate/rules.py",
    "gate/clock.py",
    "gate/engine.py",
    "gate/decision.py",
    "gate/supervisor.py",
    "gate/sdnotify.py",
)


def test_mypy_finds_no_error_in_the_checked_code() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *CLEAN], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
