"""Ticket text to verified claims, against a bare Ed25519 verify of the same bytes.

Run: .venv/bin/python -m bench.bench_ticket
"""

from __future__ import annotations

import statistics
import time

from nacl.signing import SigningKey

from gate.engine import SiteRules, decide
from protocol.claims import TicketClaims, TimeSlot
from protocol.ticket import issue_ticket, new_ticket_id, read_ticket, verify_ticket
from protocol.trust import TrustedKey, TrustStore

from .stats import interleaved, machine, summary_us


def main(rounds: int = 20_000) -> None:
    key = SigningKey.generate()
    now = int(time.time())
    claims = TicketClaims(ticket_id=new_ticket_id(), site="potala", not_before=now - 60, expires=now + 3600, issued_at=now - 60, slot=TimeSlot(540, 600))
    text = issue_ticket(claims, key)
    trust = TrustStore([TrustedKey("sales", key.verify_key)])
    message = read_ticket(text).sign1
    signed, signature, verify_key = message.to_be_signed(), message.signature, key.verify_key
    rules = SiteRules("potala")
    results = interleaved(
        {
            "bare Ed25519 verify": lambda: verify_key.verify(signed, signature),
            "parse only": lambda: read_ticket(text),
            "parse + verify": lambda: verify_ticket(text, trust, now),
            "decide (engine)": lambda: decide(text, now, rules, trust),
        },
        rounds,
    )
    bare = statistics.median(results["bare Ed25519 verify"])
    print(f"# bench_ticket: {machine()}; ticket {len(text)} chars; {rounds} rounds each")
    for name, samples in results.items():
        print(f"{name:22} {summary_us(samples)}  ratio {statistics.median(samples) / bare:5.2f}")


if __name__ == "__main__":
    main()
