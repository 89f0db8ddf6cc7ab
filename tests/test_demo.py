"""`make demo` end to end: broker, hub and two gates, as a person would run it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_admits_refuses_and_relays_between_gates(tmp_path):
    # testkit is not installed: the demo runs from this checkout, in a directory of its own (it writes ./demo-out)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "testkit.demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    verdicts = [line.split()[1:3] for line in lines if line.startswith("  [")]
    assert verdicts == [["GRANT", "x1"], ["DENY", "forged"], ["GRANT", "x4"], ["DENY", "yesterday's"], ["DENY", "ticket"], ["DENY", "torn"],
                        ["DENY", "adult"], ["DENY", "refunded"], ["GRANT", "x1"]]
    assert any("already_used" in line and "east-1" in result.stdout for line in lines)
    assert "opened 5 times" in result.stdout
    header = next(index for index, line in enumerate(lines) if line.split()[:2] == ["GATE", "STATUS"])
    table = [dict(zip(lines[header].split(), line.replace(" ago", "_ago").split())) for line in lines[header + 1:header + 3]]
    assert [(row["GATE"], row["STATUS"], row["BACKLOG"], row["REV_LAG"]) for row in table] == [("east-1", "online", "0", "0"), ("west-2", "online", "0", "0")]
    console = next(line for line in lines if line.startswith("The operator console: http://127.0.0.1:"))
    assert "(it shows 2 gates online)" in console, console
    assert any(line.strip().startswith("viewer login:   viewer / ") for line in lines)
