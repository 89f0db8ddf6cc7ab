"""``make demo``: the whole system on this machine, narrated for a person.

Everything it makes goes to ./demo-out (keys, trust store, QR images), so a
second run starts clean and nothing touches the rest of the machine.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from nacl.signing import SigningKey

from gate.feedback import load_catalogue
from gate.rules import GateRules
from gate.validator import open_validator
from protocol.claims import TicketClaims, TicketType, TimeSlot
from protocol.keys import write_key_pair
from protocol.qr import write_ticket_png
from protocol.ticket import issue_ticket, new_ticket_id
from protocol.trust import TrustedKey, TrustStore

OUT = Path("demo-out")
SITE = "potala"


def _ticket(key: SigningKey, now: int, **claims: object) -> str:
    base = dict(ticket_id=new_ticket_id(), site=SITE, not_before=now - 3600, expires=now + 8 * 3600, issued_at=now - 3600)
    base.update(claims)
    return issue_ticket(TicketClaims(**base), key)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    issuer, rogue = SigningKey.generate(), SigningKey.generate()
    write_key_pair(issuer, OUT / "keys", "potala-sales")
    trust = TrustStore([TrustedKey("potala-sales", issuer.verify_key)])
    now = int(time.time())
    visitors = [
        ("adult, morning slot", _ticket(issuer, now, slot=TimeSlot(0, 1440))),
        ("family of four", _ticket(issuer, now, ticket_type=TicketType.GROUP, persons=4)),
        ("monk, free entry", _ticket(issuer, now, ticket_type=TicketType.RELIGIOUS)),
        ("forged (unknown key)", _ticket(rogue, now)),
        ("yesterday's ticket", _ticket(issuer, now, not_before=now - 2 * 86400, expires=now - 86400)),
        ("ticket for Jiuzhaigou", _ticket(issuer, now, site="jiuzhaigou")),
        ("torn photocopy", "LT1:NOT A REAL TICKET"),
    ]
    visitors.insert(2, ("adult, second try", visitors[0][1]))
    catalogue = load_catalogue()
    validator = open_validator(OUT / "gate-state", GateRules(SITE, gate_id="east-1"), trust)
    validator.hub_online = True
    print(f"Lungta demo: gate east-1 at site '{SITE}', trust store with key 'potala-sales'; QR images in {OUT}/\n")
    for index, (who, text) in enumerate(visitors, 1):
        write_ticket_png(text, OUT / f"visitor-{index}.png")
        decision = validator.scan(text).decision
        verdict = "GRANT" if decision.granted else "DENY "
        persons = f" x{decision.persons}" if decision.granted else ""
        message = catalogue[decision.reason]
        print(f"  {verdict}{persons:4} {who:22} {decision.reason.value:14} {message.en} | {message.zh} | {message.bo}")
        if decision.detail:
            print(f"{'':33}{decision.detail}")
    validator.close()
    print(f"\nTry: .venv/bin/lungta ticket inspect \"$(.venv/bin/lungta ticket issue --key {OUT}/keys/potala-sales.key --site {SITE})\"")


if __name__ == "__main__":
    main()
