"""ISO 8601 instants as the command line and config files accept them."""

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
