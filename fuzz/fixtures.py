"""The fixed keys, rules and genuine tickets every harness starts from (seeded: a crash input replays)."""

from __future__ import annotations

from nacl.signing import SigningKey

from gate.rules import GateRules
from protocol.base45 import b45decode
from protocol.claims import TicketClaims, TicketType, TimeSlot
from protocol.ticket import PREFIX, issue_ticket, read_ticket
from protocol.trust import TrustedKey, TrustStore
from testkit.tickets import NOW, SITE

from .driver import seeded
from .hostile import hostile_tickets

ISSUER = SigningKey(seeded(1))
HUB = SigningKey(seeded(2))
TRUST = TrustStore([TrustedKey("sales", ISSUER.verify_key)])
HUB_TRUST = TrustStore([TrustedKey("hub", HUB.verify_key)])
RULES = GateRules(SITE, gate_id="east-1", zone="white-palace")


def genuine_tickets() -> list[str]:
    """Tickets the trusted issuer signed, valid at NOW: every claim kind appears in one of them."""
    base = dict(site=SITE, not_before=NOW - 3600, expires=NOW + 86_400, issued_at=NOW - 7200)
    variants = [
        dict(ticket_id=b"\x01" * 12),
        dict(ticket_id=b"\x02" * 12, zones=("white-palace", "red-palace"), ticket_type=TicketType.GROUP, persons=12, entries=3, entries_per_day=1, slot=TimeSlot(540, 630), reentry=True),
        dict(ticket_id=b"\x03" * 16, issuer="potala-sales", holder_name="扎西", holder_hash=b"\x04" * 16, ticket_type=TicketType.STAFF, entries=0),
    ]
    return [issue_ticket(TicketClaims(**base, **variant), ISSUER) for variant in variants]


GENUINE = frozenset(genuine_tickets())


def ticket_seeds() -> list[str]:
    return [*sorted(GENUINE), *hostile_tickets(ISSUER, NOW)]


def cose_seeds() -> list[bytes]:
    return [b45decode(text[len(PREFIX):]) for text in ticket_seeds()]


def claims_seeds() -> list[bytes]:
    return [read_ticket(text).sign1.payload for text in sorted(GENUINE)]
