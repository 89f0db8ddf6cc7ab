"""The offline decision: ticket text + time + gate rules + local state -> Decision.

Pure on purpose: no clock, no files, no network of its own. Everything it
needs is passed in, so it is tested exhaustively and fast, and the daemon, the
CLI and the benchmarks all run exactly this code. The signature is checked
before anything the claims say is believed; after that the checks run in the
order a visitor would find most useful to hear about (a ticket for another
day is "expired", not "already used").
"""

from __future__ import annotations

from datetime import datetime

from protocol.claims import MAIN_ZONE, TicketClaims, TicketType
from protocol.errors import TicketError
from protocol.ticket import verify_ticket
from protocol.trust import TrustStore

from .decision import Decision, Reason
from .realname.policy import HolderRequirement, PresentedHolder, holder_matches
from .rules import ClockPolicy, Direction, GateRules, OfflinePolicy, StateView


def decide(text: str, now: int, rules: GateRules, trust: TrustStore, state: StateView, direction: Direction = Direction.ENTRY,
           holder: PresentedHolder | None = None) -> Decision:
    """Decide one scan at Unix time ``now`` for a passage in ``direction``; ``holder`` is the ID
    presented for a real-name ticket, already turned into digests (gate/realname/policy.py)."""
    try:
        verified = verify_ticket(text, trust, now)
    except TicketError as error:
        return Decision.deny(Reason(error.reason), str(error))
    claims = verified.claims
    flagged = False
    if not state.clock_trusted():
        if rules.clock_policy is ClockPolicy.DENY:
            return Decision.deny(Reason.CLOCK_UNTRUSTED, "gate clock jumped back; waiting for hub time", claims)
        flagged = True
    refusal = _validity(claims, now, rules) or _revocation(claims, state)
    if refusal:
        return refusal
    if direction is Direction.EXIT:
        return Decision.grant(claims, "exit", Reason.EXIT, flagged)
    local = datetime.fromtimestamp(now, rules.timezone)
    refusal = _slot(claims, local, rules) or _entries(claims, local, rules, state)
    if refusal:
        return refusal
    if _single_entry(claims) and not state.hub_online():
        if rules.offline_policy is OfflinePolicy.DENY:
            return Decision.deny(Reason.OFFLINE_REFUSED, "gate is cut off from the hub; single-entry tickets wait", claims)
        flagged = True
    refusal = _quota(claims, local, state) or _holder(claims, rules, holder)
    return refusal or Decision.grant(claims, flagged=flagged)


def zone_of(rules: GateRules) -> str:
    return rules.zone or MAIN_ZONE


def _single_entry(claims: TicketClaims) -> bool:
    return claims.entries == 1 and not claims.reentry


def _validity(claims: TicketClaims, now: int, rules: GateRules) -> Decision | None:
    if now < claims.not_before:
        return Decision.deny(Reason.NOT_YET_VALID, f"valid from {_iso(claims.not_before, rules)}", claims)
    if now >= claims.expires:
        return Decision.deny(Reason.EXPIRED, f"expired at {_iso(claims.expires, rules)}", claims)
    if claims.site != rules.site:
        return Decision.deny(Reason.WRONG_SITE, f"ticket is for site {claims.site!r}, this gate is {rules.site!r}", claims)
    if rules.zone and rules.zone not in claims.zones:
        return Decision.deny(Reason.WRONG_ZONE, f"zone {rules.zone!r} is not on this ticket ({', '.join(claims.zones) or 'main area only'})", claims)
    return None


def _revocation(claims: TicketClaims, state: StateView) -> Decision | None:
    if state.is_revoked(claims.ticket_id):
        return Decision.deny(Reason.REVOKED, "ticket was refunded or changed", claims)
    return None


def _slot(claims: TicketClaims, local: datetime, rules: GateRules) -> Decision | None:
    if claims.slot is None or claims.ticket_type is TicketType.STAFF:
        return None
    minute = local.hour * 60 + local.minute
    if claims.slot.start - rules.slot_grace_before_minutes <= minute < claims.slot.end + rules.slot_grace_after_minutes:
        return None
    return Decision.deny(Reason.OUTSIDE_SLOT, f"slot {claims.slot}, now {local:%H:%M}", claims)


def _entries(claims: TicketClaims, local: datetime, rules: GateRules, state: StateView) -> Decision | None:
    usage = state.usage(claims.ticket_id, zone_of(rules), local.date())
    consumed = usage.consumed(claims.reentry)
    if claims.reentry and consumed > 0 and claims.entries == 1:
        return Decision.deny(Reason.ALREADY_USED, f"already inside since {_iso(usage.last_at, rules)} via gate {usage.last_gate}", claims)
    if claims.entries and consumed >= claims.entries:
        if claims.entries == 1:
            return Decision.deny(Reason.ALREADY_USED, f"used at {_iso(usage.last_at, rules)} at gate {usage.last_gate}", claims)
        return Decision.deny(Reason.ENTRIES_EXHAUSTED, f"all {claims.entries} entries used", claims)
    if claims.entries_per_day is not None and usage.today >= claims.entries_per_day:
        return Decision.deny(Reason.ENTRIES_EXHAUSTED, f"{claims.entries_per_day} entries per day used today", claims)
    return None


def _quota(claims: TicketClaims, local: datetime, state: StateView) -> Decision | None:
    if claims.ticket_type is TicketType.STAFF:
        return None
    remaining = state.quota_remaining(local.date(), local.hour * 60 + local.minute)
    if remaining is not None and remaining < claims.persons:
        return Decision.deny(Reason.QUOTA_EXHAUSTED, f"{remaining} place(s) left in this slot at this gate, ticket is for {claims.persons}", claims)
    return None


def _holder(claims: TicketClaims, rules: GateRules, holder: PresentedHolder | None) -> Decision | None:
    """Last of the checks: an ID is asked for only when everything else would admit."""
    requirement = rules.realname.requirement(claims)
    if requirement is HolderRequirement.NONE:
        return None
    if requirement is HolderRequirement.REFUSED:
        return Decision.deny(Reason.HOLDER_MISMATCH, "old-format real-name ticket refused by site policy (realname.legacy = deny); reissue it", claims)
    if holder is None or holder.ticket_id != claims.ticket_id:
        return Decision.deny(Reason.HOLDER_CHECK_REQUIRED, "real-name ticket: ID check", claims)
    if not holder_matches(claims, holder):
        return Decision.deny(Reason.HOLDER_MISMATCH, "the ID presented is not the ticket holder's", claims)
    return None


def _iso(ts: int | None, rules: GateRules) -> str:
    """A time for the visitor's message; total, because a usage time may come from another gate's report."""
    if ts is None:
        return "?"
    try:
        return datetime.fromtimestamp(ts, rules.timezone).isoformat(timespec="minutes")
    except (ValueError, OverflowError, OSError):  # beyond what datetime can show (year 10000 and on)
        return f"Unix time {ts}"
