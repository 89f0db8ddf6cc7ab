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


def test_in_a_terminal_the_demo_keeps_serving_the_console_until_ctrl_c(tmp_path):
    """`make demo` typed in a terminal: the dashboard stays up after the story ends, and Ctrl-C stops it cleanly."""
    import fcntl
    import pty
    import re
    import select
    import termios
    import time
    import urllib.request

    def controlling_terminal() -> None:  # the pty becomes the child's terminal, so ^C is a real SIGINT
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    master, slave = pty.openpty()
    demo = subprocess.Popen([sys.executable, "-m", "testkit.demo"], stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path, env=env, preexec_fn=controlling_terminal)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            assert time.monotonic() < deadline and demo.poll() is None, f"no {marker!r} in: {seen.decode(errors='replace')[-2000:]}"
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 65536)

    try:
        read_until(b"Serving the dashboard until you press Ctrl-C.", 240)
        url = re.search(r"The operator console: (\S+)", seen.decode(errors="replace")).group(1)
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"login-form" in page.read()
        assert demo.poll() is None, "still serving after printing the logins"
        os.write(master, b"\x03")  # Ctrl-C
        deadline = time.monotonic() + 60
        while demo.poll() is None and time.monotonic() < deadline:  # keep reading: a full pty would block the demo's last lines
            if select.select([master], [], [], 1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # EIO: the demo closed its side
                    break
        assert demo.wait(10) == 0, seen.decode(errors="replace")[-2000:]
    finally:
        if demo.poll() is None:
            demo.kill()
        os.close(master)
