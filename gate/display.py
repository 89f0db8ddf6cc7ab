"""What the visitor and the staff see for each decision.

A turnstile's own display or lamp is driven through the turnstile; what is
shown here is the message: ``LogDisplay`` writes it to the journal (every
gate), ``TerminalDisplay`` is the handheld validator's full screen: a large
green or red field, the reason in Tibetan, Chinese and English, the number
of persons, the masked holder name of a real-name ticket, and a bell.

A flagged admission (granted while the gate could not check with the hub,
or on a clock it does not trust: gate/engine.py) is shown amber, with
"CHECK" beside ENTER, so staff look twice at the ticket and the person;
the daemon's log says which of the two it was. A real-name ticket waiting
for its holder's ID (``holder_check_required``) is amber "ID CHECK", not a
red STOP: the ticket is good so far, staff ask for the card (the masked
name in bold, to match the card and the face); if no ID comes in time the
screen stays amber with the reason the ticket was not used.
"""

from __future__ import annotations

import logging
import shutil
from typing import Protocol, TextIO

from .decision import Decision, Reason
from .feedback import VisitorMessage

log = logging.getLogger("gate.visitor")

GREEN, AMBER, RED, RESET, BOLD, CLEAR = "\x1b[42;30m", "\x1b[43;30m", "\x1b[41;97m", "\x1b[0m", "\x1b[1m", "\x1b[2J\x1b[H"
FLAGGED_NOTE = "CHECK: admitted without the hub or on an untrusted clock; look at ticket and holder  /  请人工核验"
ID_CHECK_VERDICT = "▣ ID CHECK  验证身份证  ངོ་སྤྲོད་ལག་འཁྱེར།"  # a real-name ticket waiting for its holder's ID: not a refusal
BELL = "\a"


class Display(Protocol):
    def show(self, decision: Decision, message: VisitorMessage) -> None: ...


class LogDisplay:
    """One grep-able line per decision: outcome, reason, persons, ticket, message."""

    def show(self, decision: Decision, message: VisitorMessage) -> None:
        ticket = decision.ticket.ticket_id_hex if decision.ticket else "-"
        log.info(
            "visitor %s reason=%s persons=%d ticket=%s flagged=%s | %s | %s | %s",
            "GRANT" if decision.granted else "DENY", decision.reason.value, decision.persons, ticket, decision.flagged,
            message.en, message.zh, message.bo,
        )


class TerminalDisplay:
    """Full-screen decision for handheld validators; writes ANSI to ``stream``."""

    def __init__(self, stream: TextIO, bell: bool = True) -> None:
        self._stream, self._bell = stream, bell

    def render(self, decision: Decision, message: VisitorMessage, width: int | None = None) -> str:
        width = width or shutil.get_terminal_size((60, 20)).columns
        flagged = decision.granted and decision.flagged
        id_check = decision.reason is Reason.HOLDER_CHECK_REQUIRED
        colour = AMBER if flagged or id_check else GREEN if decision.granted else RED
        verdict = "✔ ENTER  通行  ཕེབས།" if decision.granted else ID_CHECK_VERDICT if id_check else "✘ STOP  禁止  འགོག"
        verdict = (verdict + "  · CHECK 核验" if flagged else verdict).center(width)
        lines = [CLEAR, colour + BOLD + " " * width, verdict, " " * width + RESET, ""]
        if flagged:
            lines.append(f"  {BOLD}{FLAGGED_NOTE}{RESET}")
        lines += [f"  {text}" for text in message.lines()]
        if decision.granted and decision.persons > 1:
            lines.append(f"  {decision.persons} persons / {decision.persons} 人 / མི་ {decision.persons}")
        if decision.ticket is not None:
            claims = decision.ticket
            lines.append(f"  {claims.ticket_type.label}  ·  {claims.ticket_id_hex[:12]}")
            if claims.holder_name:
                lines.append(f"  {BOLD}{claims.holder_name}{RESET}" if id_check else f"  {claims.holder_name}")
        if not decision.granted and decision.detail:
            lines.append(f"  ({decision.detail})")
        return "\n".join(lines) + "\n" + (BELL if self._bell else "")

    def show(self, decision: Decision, message: VisitorMessage) -> None:
        self._stream.write(self.render(decision, message))
        self._stream.flush()
