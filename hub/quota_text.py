"""Quotas as the operator writes and reads them: days, slots and caps in, table rows out.

Shared by the command line (lungta/hub_cli.py) and the console's API, so both
refuse the same things with the same words. A slot is parsed by
``protocol.claims.TimeSlot.parse``, the parser tickets use: one syntax for
``HH:MM-HH:MM`` across tickets and quotas.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from protocol.claims import TimeSlot

from .quota import MAX_CAP, GateSlot, Quota, QuotaError, held, newest, used


def parse_day(text: str) -> str:
    """``text`` if it is a real day written YYYY-MM-DD (the form gates put in their events)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or day.isoformat() != text:
        raise QuotaError(f"date {text!r} is not a day as YYYY-MM-DD")
    return text


def parse_slot(text: str) -> tuple[int, int]:
    """Minutes of the day (start, end) of ``HH:MM-HH:MM``; ``24:00`` ends a slot at midnight."""
    try:
        slot = TimeSlot.parse(text)
    except ValueError as error:
        raise QuotaError(str(error)) from None
    return slot.start, slot.end


def check_cap(cap: int) -> int:
    if not 0 <= cap <= MAX_CAP:
        raise QuotaError(f"cap {cap} must be a number of persons in 0..{MAX_CAP}")
    return cap


def slot_row(quota: Quota, gates: Sequence[GateSlot], skew_ms: int) -> dict[str, object]:
    """One slot for ``lungta hub quota list``: admitted so far and the places out at gates."""
    return {
        "date": quota.day,
        "slot": quota.slot,
        "cap": quota.cap,
        "admitted": sum(used(slot) for slot in gates),
        "allocated": sum(held(slot, skew_ms) for slot in gates),
        "gates": sum(1 for slot in gates if slot.leases or slot.report),
    }


def _until(now_ms: int, then_ms: int) -> str:
    seconds = (then_ms - now_ms) // 1000
    return f"in {seconds}s" if seconds >= 0 else f"{-seconds}s ago"


def gate_row(slot: GateSlot, now_ms: int, skew_ms: int) -> dict[str, object]:
    """One gate for ``lungta hub quota show``; ``confirmed`` is the lease the gate last said it holds."""
    lease = newest(slot)
    return {
        "gate": slot.gate,
        "granted": lease.granted if lease else "-",
        "held": held(slot, skew_ms),
        "used": used(slot),
        "expires": _until(now_ms, lease.expires_ms) if lease else "-",
        "lease_id": lease.lease_id if lease else "-",
        "confirmed": slot.report.lease_id if slot.report else "-",
        "online": slot.online,
    }
