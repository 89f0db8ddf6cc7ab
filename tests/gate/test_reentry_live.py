"""Issue 10's re-entry bypass on a live ``lungta gate run``: an exit scan nobody walks out of must not
re-arm a re-entry ticket, or a second person enters on the same code.

One gate with an entry and an exit reader (two ptys) and the sim turnstile (entry and exit relays and a
passage sensor). How many walk through is the sim's ``persons_passing``, so the gate is restarted
between phases with another setting; its state persists, as on a real gate.
"""

from __future__ import annotations

from pathlib import Path

from protocol.keys import write_key_pair
from testkit.faults.invariants import gate_rows
from testkit.live_gate import WAIT, GateProcess, turnstile_log, write_gate_config
from testkit.ptys import RawPty
from testkit.tickets import live_ticket
from testkit.waiting import wait_until

SIM_LINE = "passage_delay_seconds = 0.01\n"


def gate_config(tmp_path: Path, public: Path, entry: RawPty, exit_reader: RawPty, walking: int | None) -> Path:
    exit_scanner = f'[[scanner]]\nkind = "serial"\nport = "{exit_reader.port}"\ndirection = "exit"\ndedupe_seconds = 0.0\n'
    config = write_gate_config(tmp_path, public, entry.port, sections=exit_scanner)
    text = config.read_text(encoding="utf-8").replace("[gate]\n", '[gate]\ndirection = "both"\n', 1)
    if walking is not None:
        text = text.replace(SIM_LINE, f"{SIM_LINE}persons_passing = {walking}\n", 1)
    config.write_text(text, encoding="utf-8")
    return config


def done(tmp_path: Path, direction: str) -> list[dict]:
    """The finished admissions in ``direction``, from the sim turnstile's log (passage counts in ``passed``)."""
    return [line for line in turnstile_log(tmp_path) if line["event"] == "admit_done" and line.get("direction") == direction]


def run_phase(tmp_path: Path, config: Path, readers: dict[str, RawPty], scans: list[str], ticket: str) -> list[str]:
    """Start the gate, show ``ticket`` at each reader of ``scans`` in turn, stop it; the visitor lines.

    After each scan the test waits for its decision and for the gate to settle its admission, if any (the
    next scan must meet the settled ticket; the turnstile's own log comes before the gate's commit)."""
    gate = GateProcess(config)
    try:
        for reader in readers.values():
            gate.wait_ready(reader.port)
        start = gate.mark()
        for count, reader in enumerate(scans, 1):
            readers[reader].scan(ticket)
            gate.wait_line("gate.visitor", count=count, after=start)  # committed, with its open admission, before it is shown
            wait_until(lambda: not gate_rows(tmp_path / "state", "SELECT COUNT(*) FROM open_admission")[0][0],
                       f"the {reader} admission settled by the turnstile (re-armed or not in the same commit)", WAIT)
        return [line for line in gate.lines[start:] if "gate.visitor" in line]
    finally:
        assert gate.stop() == 0
        assert "Traceback" not in gate.log


def test_an_exit_nobody_walks_out_of_does_not_re_arm_a_reentry_ticket_on_a_live_gate(tmp_path, issuer_key):
    _, public = write_key_pair(issuer_key, tmp_path / "keys", "sales")
    readers = {"entry": RawPty(), "exit": RawPty()}
    ticket = live_ticket(issuer_key, reentry=True)

    def phase(walking: int | None, *scans: str) -> list[str]:
        return run_phase(tmp_path, gate_config(tmp_path, public, readers["entry"], readers["exit"], walking), readers, list(scans), ticket)

    try:
        inside = phase(None, "entry")
        assert "GRANT reason=valid" in inside[0] and [line["passed"] for line in done(tmp_path, "entry")] == [1]

        # the visitor shows the code at the exit reader but stays inside (or hands it back over the barrier)
        visitor = phase(0, "exit", "entry")
        assert "GRANT reason=exit" in visitor[0] and [line["passed"] for line in done(tmp_path, "exit")] == [0]
        assert "DENY reason=already_used" in visitor[1], "a second person cannot enter on the same code"
        assert len(done(tmp_path, "entry")) == 1, "the entry relay never opened for it"

        # the control: an exit somebody does walk through re-arms the ticket
        back = phase(None, "exit", "entry")
        assert "GRANT reason=exit" in back[0] and "GRANT reason=valid" in back[1]
        assert [line["passed"] for line in done(tmp_path, "exit")] == [0, 1]
    finally:
        for reader in readers.values():
            reader.close()
