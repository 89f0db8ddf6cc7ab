"""Harness: any text a scanner can hand over, decided by the real engine.

Run: python -m fuzz.ticket_text -runs=1000000. The text is the fuzz bytes
as UTF-8 (invalid sequences replaced, as no scanner passes them on) with or
without the ``LT1:`` prefix. Findings: any exception out of ``decide``, and
a grant for anything but a genuine ticket.
"""

from __future__ import annotations

from gate.decision import Decision
from gate.engine import decide
from protocol.ticket import PREFIX

from .driver import Draw, run
from .fixtures import GENUINE, NOW, RULES, TRUST, ticket_seeds
from .state import FixedState

STATE = FixedState()


def one_input(data: bytes) -> None:
    draw = Draw(data)
    prefixed = draw.byte() & 1
    text = (PREFIX if prefixed else "") + draw.rest().decode("utf-8", "replace")
    decision = decide(text, NOW, RULES, TRUST, STATE)
    assert isinstance(decision, Decision) and decision.detail, decision
    assert not decision.granted or text in GENUINE, f"granted a ticket nobody issued: {text!r}"


def seeds() -> list[bytes]:
    return [b"\x01" + text[len(PREFIX):].encode() for text in ticket_seeds()] + [b"\x00LT1:", b"\x00\xff\xfe"]


if __name__ == "__main__":
    raise SystemExit(run("ticket_text", one_input, seeds))
