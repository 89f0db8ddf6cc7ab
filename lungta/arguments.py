"""Values the command line accepts: ISO 8601 instants, time zones and ticket ids."""

from __future__ import annotations

import argparse
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import CommandError

# The site time zone a command assumes when neither --timezone nor a config gives one:
# the gate's own default (gate/rules.py), read from there so it is written once.
TIME_HELP = "ISO 8601; without an offset it is read in the site's time zone (--timezone)"


def default_timezone() -> ZoneInfo:
    from gate.rules import GateRules

    return GateRules.timezone


def add_timezone_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timezone", metavar="ZONE", help="the site's IANA time zone, for times given without an offset (default: the gate's, Asia/Shanghai)")


def timezone_of(args: argparse.Namespace) -> ZoneInfo:
    """--timezone, checked, or the default site zone."""
    name = getattr(args, "timezone", None)
    if not name:
        return default_timezone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"--timezone: unknown time zone {name!r} (e.g. Asia/Shanghai)") from None


def parse_instant(text: str, option: str, zone: tzinfo) -> int:
    """Unix seconds for an ISO 8601 time; one without an offset is taken in ``zone`` (the site's)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not an ISO 8601 time (e.g. 2026-11-23T09:00:00+08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
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
