"""Values the command line accepts: ISO 8601 instants and ticket ids."""

from __future__ import annotations

from datetime import datetime, timezone

from .errors import CommandError


def parse_instant(text: str, option: str) -> int:
    """Unix seconds for an ISO 8601 time; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not an ISO 8601 time (e.g. 2026-11-23T09:00:00+08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def parse_ticket_id(text: str) -> bytes:
    """The raw ticket id from the lowercase hex that ``lungta ticket inspect`` prints."""
    try:
        ticket_id = bytes.fromhex(text)
    except ValueError:
        raise CommandError(f"ticket id {text!r} is not hex (use the ticket_id that 'lungta ticket inspect' prints)") from None
    if not 12 <= len(ticket_id) <= 32:
        raise CommandError(f"ticket id {text!r} is {len(ticket_id)} bytes; ticket ids are 12..32 bytes")
    return ticket_id
