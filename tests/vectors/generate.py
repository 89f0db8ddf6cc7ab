"""Regenerate tests/vectors/*.json: python tests/vectors/generate.py

Deterministic: fixed seed key, ticket ids and times, and Ed25519 signatures
are deterministic, so running this again yields the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

from nacl.signing import SigningKey

from protocol.base45 import b45decode, b45encode
from protocol.cbor import encode
from protocol.claims import TicketClaims, TicketType, TimeSlot, claims_to_cbor
from protocol.cose import sign1
from protocol.keys import kid_for, private_key_pem, public_key_pem
from protocol.ticket import PREFIX, issue_ticket

HERE = Path(__file__).parent
ISSUER = SigningKey(bytes(range(32)))
STRANGER = SigningKey(bytes(range(32, 64)))
AT = 1_795_000_000  # 2026-11-18T11:06:40Z


def _claims(**extra: object) -> TicketClaims:
    base = dict(ticket_id=bytes.fromhex("0102030405060708090a0b0c"), site="potala", not_before=AT - 3600, expires=AT + 86400, issued_at=AT - 7200)
    base.update(extra)
    return TicketClaims(**base)


def _flip(text: str, index: int) -> str:
    raw = bytearray(b45decode(text[len(PREFIX):]))
    raw[index] ^= 0x01
    return PREFIX + b45encode(bytes(raw))


def vectors() -> list[dict]:
    plain = _claims()
    rich = _claims(ticket_id=bytes.fromhex("aabbccddeeff00112233445566778899"), issuer="potala-sales", zones=("red-palace",), ticket_type=TicketType.GROUP, persons=8, entries=2, entries_per_day=1, slot=TimeSlot(540, 600), holder_name="扎*次仁", reentry=True)
    good = issue_ticket(plain, ISSUER)
    es256 = PREFIX + b45encode(encode([encode({1: -7, 4: kid_for(ISSUER.verify_key)}), {}, encode(claims_to_cbor(plain)), bytes(64)]))
    return [
        {"name": "valid-single-entry", "text": good, "at": AT, "verdict": "valid", "claims": claims_to_cbor_json(plain)},
        {"name": "valid-group-multi-day", "text": issue_ticket(rich, ISSUER), "at": AT, "verdict": "valid", "claims": claims_to_cbor_json(rich)},
        {"name": "bad-signature", "text": _flip(good, len(b45decode(good[4:])) - 1), "at": AT, "verdict": "bad_signature"},
        {"name": "unknown-key", "text": issue_ticket(plain, STRANGER), "at": AT, "verdict": "unknown_key"},
        {"name": "key-not-yet-valid", "text": good, "at": AT - 400 * 86400, "verdict": "key_not_valid"},
        {"name": "wrong-prefix", "text": "HC1:" + good[4:], "at": AT, "verdict": "malformed"},
        {"name": "truncated", "text": good[:-10], "at": AT, "verdict": "malformed"},
        {"name": "wrong-algorithm", "text": es256, "at": AT, "verdict": "malformed"},
        {"name": "not-base45", "text": PREFIX + "lowercase!", "at": AT, "verdict": "malformed"},
        {"name": "signed-sign1-over-bad-claims", "text": PREFIX + b45encode(sign1(encode({4: "x", 5: 1, 7: b"1" * 12}), kid_for(ISSUER.verify_key), ISSUER)), "at": AT, "verdict": "malformed"},
    ]


def claims_to_cbor_json(claims: TicketClaims) -> dict:
    """The claims map with bytes as hex, so the vector file is plain JSON."""

    def convert(value: object) -> object:
        if isinstance(value, bytes):
            return {"hex": value.hex()}
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert(claims_to_cbor(claims))


def main() -> None:
    trust_window = {"not_before": "2026-01-01T00:00:00+08:00", "not_after": "2027-01-01T00:00:00+08:00"}
    document = {
        "issuer_private_key_pem": private_key_pem(ISSUER).decode(),
        "issuer_public_key_pem": public_key_pem(ISSUER.verify_key).decode(),
        "issuer_kid": kid_for(ISSUER.verify_key).hex(),
        "trust_window": trust_window,
        "vectors": vectors(),
    }
    (HERE / "tickets.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
