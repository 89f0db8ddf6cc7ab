"""What the hub derives from gate events: the used marks it relays to the site.

Pure functions, so the rule "every admission is published at once to the
other gates" is tested without a broker or a database.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.messages import GateEvent, UsedMark

ADMISSION = "admission"
ROLLBACK = "rollback"


def used_mark_for(event: GateEvent) -> UsedMark | None:
    """The mark an admission (or the undo a rollback) relays, or None for other events.

    The gate puts what only it knows in the event's data: ``day`` (the local
    day the entry counts for, YYYY-MM-DD), ``entries_used`` (the ticket's
    count after this admission or rollback) and ``expires`` (the ticket's
    expiry, Unix s). Missing or mistyped values fall back to safe defaults:
    an admission counts as one entry used.
    """
    if event.ticket_id is None or event.kind not in (ADMISSION, ROLLBACK):
        return None
    data = event.data
    day = data.get("day")
    entries = data.get("entries_used")
    expires = data.get("expires")
    undo = event.kind == ROLLBACK
    return UsedMark(
        ticket_id=event.ticket_id,
        gate=event.gate,
        at_ms=event.at_ms,
        day=day if type(day) is str and len(day) == 10 else None,
        entries_used=entries if type(entries) is int and 0 <= entries < 2**32 else (0 if undo else 1),
        expires=expires if type(expires) is int and expires >= 0 else None,
        undo=undo,
    )


def used_marks_for(events: Iterable[GateEvent]) -> list[UsedMark]:
    return [mark for mark in map(used_mark_for, events) if mark is not None]
