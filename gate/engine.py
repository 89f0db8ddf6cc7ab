"""The offline decision: ticket text + time + gate config + local state -> Decision.

Pure on purpose: no clock, no files, no network. Everything it needs is
passed in, so it is tested exhaustively and fast, and the daemon, the CLI
and the benchmarks all run exactly this code. Checks run cheapest-refusal
first, but the signature always comes before anything the claims say.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import TicketError
from protocol.ticket import verify_ticket
from protocol.trust import TrustStore

from .decision import Decision, Reason


@dataclass(frozen=True)
class SiteRules:
    """What the engine needs to know of the gate it decides for."""

    site: str
    zones: tuple[str, ...] = ()


def decide(text: str, now: int, rules: SiteRules, trust: TrustStore) -> Decision:
    """Decide one scan at Unix time ``now``."""
    try:
        verified = verify_ticket(text, trust, now)
    except TicketError as error:
        return Decision.deny(Reason(error.reason), str(error))
    claims = verified.claims
    if now < claims.not_before:
        return Decision.deny(Reason.NOT_YET_VALID, f"valid from {claims.not_before}", claims)
    if now >= claims.expires:
        return Decision.deny(Reason.EXPIRED, f"expired at {claims.expires}", claims)
    if claims.site != rules.site:
        return Decision.deny(Reason.WRONG_SITE, f"ticket is for site {claims.site!r}, this gate is {rules.site!r}", claims)
    if claims.zones and rules.zones and not set(rules.zones) & set(claims.zones):
        return Decision.deny(Reason.WRONG_ZONE, f"ticket zones {list(claims.zones)} do not include {list(rules.zones)}", claims)
    return Decision.grant(claims)
