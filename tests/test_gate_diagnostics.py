"""A technician's tools on a real gate config: ``gate state`` beside a running gate, ``gate test``."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from gate.cache.revocations import RevocationSet
from gate.cache.state import GateStore
from protocol.qr import write_ticket_png
from testkit.ptys import RawPty
from testkit.tickets import SITE


def lungta(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungta", *args], capture_output=True, text=True, timeout=timeout)


def records(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_gate_state_reads_a_state_held_open_by_the_running_gate_without_writing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with GateStore.open(state) as store, RevocationSet.open(state / "revocations") as revocations:  # as the daemon holds them
        store.record_event("local_revocation", 1_000, bytes(12), {"expires": 2})
        revocations.revoke_local([(bytes(12), 2_000_000_000)])
        # state.sqlite3-shm is SQLite's shared-memory index that every WAL reader marks; the data files must not change.
        before = {path.name: path.stat().st_mtime_ns for path in state.iterdir() if path.is_file() and not path.name.endswith("-shm")}
        (record,) = records(lungta("gate", "state", "--state", str(state)))
        after = {path.name: path.stat().st_mtime_ns for path in state.iterdir() if path.is_file() and not path.name.endswith("-shm")}
    assert record["revocations"] == {"held_by_running_gate": True}
    assert record["events"] and record["clock"]["trusted"] is True
    assert after == before, "a read-only look changes no file of the running gate"


def _gate_toml(tmp_path: Path, keys: Path, body: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(f'[gate]\nsite = "{SITE}"\nid = "east-1"\nstate_dir = "state"\ntrust = "{keys / "sales.pub"}"\n{body}', encoding="utf-8")
    return path


def _keys(tmp_path: Path) -> Path:
    assert lungta("keygen", "--kid", "sales", "--out", str(tmp_path / "keys")).returncode == 0
    return tmp_path / "keys"


def test_gate_test_relay_admits_one_person_through_the_configured_turnstile(tmp_path: Path) -> None:
    config = _gate_toml(tmp_path, _keys(tmp_path), f'[turnstile]\nkind = "sim"\n[turnstile.sim]\noutput_path = "{tmp_path / "sim.jsonl"}"\n')
    (record,) = records(lungta("gate", "test", "relay", "--config", str(config)))
    assert record["part"] == "relay" and record["passed"] == 1 and record["confirmed"] is True and record["error"] is None
    assert (tmp_path / "sim.jsonl").read_text(), "the simulated turnstile logged the pulse and the passage"


def test_gate_test_scanner_prints_each_code_as_read(tmp_path: Path) -> None:
    cable = RawPty()
    config = _gate_toml(tmp_path, _keys(tmp_path), f'mode = "handheld"\n[[scanner]]\nkind = "serial"\nport = "{cable.port}"\n')
    process = subprocess.Popen([sys.executable, "-m", "lungta", "gate", "test", "scanner", "--config", str(config), "--seconds", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        line = ""
        while not line and time.monotonic() < deadline:  # send until the reader has the port open and reports the code
            cable.scan("LT1:TESTCODE")
            line = _readline(process, 1.0)
        assert json.loads(line) | {"text": "LT1:TESTCODE", "direction": "entry"} == json.loads(line)
    finally:
        process.terminate()
        process.wait(30)
        cable.close()


def _readline(process: subprocess.Popen, seconds: float) -> str:
    import select

    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline() if ready else ""


def test_gate_test_camera_saves_a_snapshot_and_says_what_it_decoded(tmp_path: Path, mint) -> None:
    ticket = mint()
    (tmp_path / "frames").mkdir()
    write_ticket_png(ticket, tmp_path / "frames" / "frame.png")
    config = _gate_toml(tmp_path, _keys(tmp_path), 'mode = "handheld"\n[[scanner]]\nkind = "camera"\nsource = "frames"\n')
    (record,) = records(lungta("gate", "test", "camera", "--config", str(config), "--out", str(tmp_path)))
    assert record["texts"] == [ticket] and Path(record["snapshot"]).read_bytes()[:4] == b"\x89PNG"


def test_gate_test_sensor_prints_each_passage_the_sensor_counts_and_moves_no_relay(tmp_path: Path) -> None:
    from gate.turnstile.build import build_turnstile
    from gate.turnstile.sim import SIM_CHIP, SIM_LINES
    from lungta.config import load_gate_config
    from lungta.gate_test_cli import watch_sensor

    config = load_gate_config(_gate_toml(tmp_path, _keys(tmp_path), '[turnstile]\nkind = "sim"\n'))
    turnstile = build_turnstile(config.turnstile)  # as `gate test sensor` builds it; its lines are fake GPIO lines
    beam = turnstile.lines.line(SIM_CHIP, SIM_LINES["passage_sensor"])
    printed: queue.Queue = queue.Queue()
    stop = threading.Event()
    watcher = threading.Thread(target=watch_sensor, args=(turnstile, 60.0, stop, printed.put), name="watch-sensor")
    watcher.start()
    try:
        for count in (1, 2):
            beam.drive_high()  # a person breaks the beam...
            beam.drive_low()  # ...and clears it
            line = printed.get(timeout=10)
            assert line["part"] == "sensor" and line["passage"] == count
    finally:
        stop.set()
        watcher.join(10)
        turnstile.shutdown()
    assert printed.get(timeout=10)["passages"] == 2
    for relay in ("entry_relay", "exit_relay"):
        assert not any(turnstile.lines.line(SIM_CHIP, SIM_LINES[relay]).levels), f"the {relay} never closed its contact"


def test_gate_test_sensor_prints_the_count_when_the_time_is_up(tmp_path: Path) -> None:
    config = _gate_toml(tmp_path, _keys(tmp_path), '[turnstile]\nkind = "sim"\n')
    (summary,) = records(lungta("gate", "test", "sensor", "--config", str(config), "--seconds", "0.2"))
    assert summary["part"] == "sensor" and summary["passages"] == 0
