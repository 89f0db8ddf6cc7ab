"""The strict CBOR decoder against cbor2's C decoder on a real ticket, beside a bare Ed25519 verify.

Run: .venv/bin/python -m bench.bench_cbor

Untrusted CBOR goes through ``protocol.cbor``'s pure-Python strict decoder
(issue 10: cbor2 gives tags meaning and crashed on two QR codes). A ticket
holds three CBOR items: the COSE_Sign1 array, its protected header and the
claims. This measures decoding them with each decoder, interleaved in the
same run; the ticket-to-decision figure with the strict decoder is
bench_ticket's.
"""

from __future__ import annotations

import io
import statistics
import time

import cbor2
from nacl.signing import SigningKey

from protocol.base45 import b45decode
from protocol.cbor import decode_exactly
from protocol.claims import TicketClaims, TimeSlot
from protocol.cose import COSE_SIGN1_TAG, CWT_TAG
from protocol.ticket import PREFIX, issue_ticket, new_ticket_id, read_ticket

from .stats import interleaved, machine, summary_us


def _cbor2(data: bytes) -> object:
    """What protocol/cbor.py did before: cbor2's C decoder over a stream, trailing bytes checked."""
    stream = io.BytesIO(data)
    item = cbor2.CBORDecoder(stream).decode()
    assert stream.tell() == len(data)
    return item


def main(rounds: int = 20_000) -> None:
    key = SigningKey.generate()
    now = int(time.time())
    text = issue_ticket(TicketClaims(ticket_id=new_ticket_id(), site="potala", not_before=now - 60, expires=now + 3600, issued_at=now - 60, slot=TimeSlot(0, 1440)), key)
    raw = b45decode(text[len(PREFIX):])
    message = read_ticket(text).sign1
    parts = (raw, message.protected, message.payload)
    signed, signature = message.to_be_signed(), message.signature
    results = interleaved(
        {
            "bare Ed25519 verify": lambda: key.verify_key.verify(signed, signature),
            "cbor2 C decoder": lambda: [_cbor2(part) for part in parts],
            "strict decoder": lambda: [decode_exactly(raw, "COSE_Sign1", outer_tags=(CWT_TAG, COSE_SIGN1_TAG)), decode_exactly(parts[1], "protected"), decode_exactly(parts[2], "claims")],
        },
        rounds,
    )
    bare = statistics.median(results["bare Ed25519 verify"])
    print(f"# bench_cbor: {machine()}; ticket {len(text)} chars, CBOR items of {', '.join(str(len(p)) for p in parts)} bytes; {rounds} rounds each")
    for name, samples in results.items():
        print(f"{name:22} {summary_us(samples)}  ratio {statistics.median(samples) / bare:5.2f}")


if __name__ == "__main__":
    main()
