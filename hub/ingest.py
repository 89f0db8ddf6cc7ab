"""What the hub derives from gate events: the used marks it relays to the site.

Pure functions, so the rule "every admission is published at once to the
other gates" is tested without a broker or a database.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.hub_messages import UsedMark

from protocol.gate_messages import GateEvent

def used_mark_for(event: GateEvent) -> UsedMark | None:
    """The mark an event that changed a ticket's counters relays, or None for other events.

    The gate puts its counters after the change in the event's ``usage``
    (``zone``, ``day``, ``entries``, ``exits``: admissions, exits, rollbacks)
    and the ticket's expiry in ``expires``. An event without a well-formed
    ``usage`` relays nothing: a guess could only over- or under-count.
    """
    usage = event.data.get("usage")
    if event.ticket_id is None or not isinstance(usage, dict):
        return None
    zone, day, entries, exits = (usage.get(key) for key in ("zone", "day", "entries", "exits"))
    if not (type(zone) is str and type(day) is str and len(day) == 10 and _count(entries) and _count(exits)):
        return None
    expires = event.data.get("expires")
    return UsedMark(event.ticket_id, event.gate, zone, day, entries, exits, event.at_ms, expires if type(expires) is int and expires >= 0 else None)


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**32


def used_marks_for(events: Iterable[GateEvent]) -> list[UsedMark]:
    return [mark for mark in map(used_mark_for, events) if mark is not None]
