"""Hostile codes scanned by a live ``lungta gate run``: the gate keeps running, the relay never moves,
and the next good ticket is granted and pulses (issue 10)."""

from __future__ import annotations

import time

from fuzz.hostile import hostile_tickets
from fuzz.state import FixedState
from gate.engine import decide
from gate.rules import GateRules, Usage
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket
from testkit.live_gate import GateProcess, relay_openings, write_gate_config
from testkit.ptys import RawPty
from testkit.tickets import NOW, SITE, live_ticket, make_claims

GARBAGE_LINES = [b"\xff\xfe\x00\x01 not text", b"LT1:" + b"\xc3\x28" * 10, b"x" * 5000, b"\x1b[2J\x07", b""]


def test_hostile_codes_on_a_live_gate_are_refused_and_the_next_good_ticket_passes(tmp_path, issuer_key):
    _, public = write_key_pair(issuer_key, tmp_path / "keys", "sales")
    cable = RawPty()
    gate = GateProcess(write_gate_config(tmp_path, public, cable.port))
    try:
        gate.wait_ready(cable.port)
        now = int(time.time())
        hostile = [text for text in hostile_tickets(issuer_key, now) for _ in range(3)]  # the regex code crashed cbor2 only after a few scans
        for line in GARBAGE_LINES:  # dropped by the scanner's line reader, each with a log line
            cable.write(line + b"\r")
        for count, text in enumerate(hostile, 1):  # one at a time: a burst beyond the scan queue is dropped by design
            cable.scan(text)
            gate.wait_line("gate.visitor", count=count)
        assert gate.alive(), "the gate died"
        assert relay_openings(tmp_path) == 0
        cable.scan(live_ticket(issuer_key))
        gate.wait_line("GRANT")
        visitor = [line for line in gate.lines if "gate.visitor" in line]
        assert [line for line in visitor if "DENY" in line and "reason=malformed" in line] == [line for line in visitor if "DENY" in line]
        assert sum("DENY" in line for line in visitor) == len(hostile)
        assert all("GRANT reason=valid" in line for line in visitor[len(hostile):])
        gate.wait_for(lambda lines: relay_openings(tmp_path) >= 1, "the relay pulse for the good ticket")
        assert relay_openings(tmp_path) == 1
        assert gate.alive()
        assert gate.log.count("dropped a line") == len([line for line in GARBAGE_LINES if line])
        assert "Traceback" not in gate.log
    finally:
        assert gate.stop() == 0
        cable.close()


def test_a_usage_time_beyond_datetime_from_another_gate_is_still_a_decision(issuer_key, trust):
    """A gate relayed a used mark at 2^53 ms (year 287396); showing "used at ..." must not raise."""
    text = issue_ticket(make_claims(), issuer_key)
    state = FixedState(Usage(entries=1, last_at=2**53 // 1000, last_gate="rogue"))
    decision = decide(text, NOW, GateRules(SITE), trust, state)
    assert decision.reason.value == "already_used"
    assert f"Unix time {2**53 // 1000}" in decision.detail
