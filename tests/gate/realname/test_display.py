"""What staff see on the handheld during a real-name ticket's ID check: "ID CHECK", not STOP."""

from __future__ import annotations

from gate.decision import Decision, Reason
from gate.display import AMBER, ID_CHECK_VERDICT, RED, TerminalDisplay
from gate.feedback import load_catalogue
from testkit.tickets import make_claims


def render(decision: Decision) -> str:
    return TerminalDisplay(stream=None, bell=False).render(decision, load_catalogue()[decision.reason], width=60)  # type: ignore[arg-type]


def test_a_ticket_waiting_for_its_holders_id_shows_id_check_and_the_masked_name() -> None:
    screen = render(Decision.deny(Reason.HOLDER_CHECK_REQUIRED, "real-name ticket: ID check", make_claims(holder_name="扎**仁")))
    assert AMBER in screen and RED not in screen and "STOP" not in screen
    assert ID_CHECK_VERDICT in screen and "ID check: please show your ID card" in screen and "实名票，请出示身份证" in screen
    assert "扎**仁" in screen


def test_an_id_that_does_not_match_is_a_red_stop() -> None:
    screen = render(Decision.deny(Reason.HOLDER_MISMATCH, "the ID presented is not the ticket holder's", make_claims(holder_name="扎**仁")))
    assert RED in screen and "STOP" in screen and ID_CHECK_VERDICT not in screen
