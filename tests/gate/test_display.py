"""What the handheld's screen shows: a flagged admission is not the plain green ENTER."""

from __future__ import annotations

from gate.decision import Decision, Reason
from gate.display import AMBER, FLAGGED_NOTE, GREEN, RED, TerminalDisplay
from gate.feedback import load_catalogue
from testkit.tickets import make_claims


def render(decision: Decision) -> str:
    return TerminalDisplay(stream=None, bell=False).render(decision, load_catalogue()[decision.reason], width=60)  # type: ignore[arg-type]


def test_a_flagged_admission_is_amber_and_asks_staff_to_check() -> None:
    screen = render(Decision.grant(make_claims(), flagged=True))
    assert AMBER in screen and GREEN not in screen
    assert "ENTER" in screen and "CHECK" in screen and FLAGGED_NOTE in screen


def test_a_verified_admission_stays_plain_green() -> None:
    screen = render(Decision.grant(make_claims()))
    assert GREEN in screen and AMBER not in screen and "CHECK" not in screen


def test_a_refusal_is_red_without_the_check_note() -> None:
    screen = render(Decision.deny(Reason.REVOKED, "revoked", make_claims()))
    assert RED in screen and FLAGGED_NOTE not in screen
