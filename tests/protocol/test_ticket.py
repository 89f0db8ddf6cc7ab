import dataclasses

import pytest
from nacl.signing import SigningKey

from protocol import errors
from protocol.base45 import b45decode, b45encode
from protocol.cbor import encode
from protocol.claims import TicketType, TimeSlot, claims_to_cbor, holder_id_hash
from protocol.cose import sign1
from protocol.keys import kid_for
from protocol.qr import ticket_qr
from protocol.ticket import PREFIX, issue_ticket, read_ticket, verify_ticket
from protocol.trust import TrustedKey, TrustStore
from testkit.tickets import DAY, NOW, make_claims


def test_issued_ticket_verifies_and_round_trips_every_claim(issuer_key, trust):
    claims = make_claims(
        issuer="potala-sales",
        zones=("white-palace", "red-palace"),
        ticket_type=TicketType.GROUP,
        persons=12,
        entries=3,
        entries_per_day=1,
        slot=TimeSlot.parse("09:00-10:30"),
        holder_name="扎*次仁",
        reentry=True,
    )
    claims = dataclasses.replace(claims, holder_hash=holder_id_hash(claims.ticket_id, "540102199001011234"))
    verified = verify_ticket(issue_ticket(claims, issuer_key), trust, NOW)
    assert verified.claims == claims
    assert verified.key.name == "sales"


def test_typical_ticket_fits_qr_version_8_at_level_m(mint):
    text = mint(slot=TimeSlot.parse("09:00-10:00"), ticket_type=TicketType.CHILD)
    code = ticket_qr(text)
    assert code.mode == "alphanumeric"
    assert code.version <= 8
    assert code.error == "M"


def test_ticket_signed_by_an_untrusted_key_is_unknown_key(trust):
    forged = issue_ticket(make_claims(), SigningKey.generate())
    with pytest.raises(errors.UnknownKey, match=r"no trusted key has kid [0-9a-f]{16}"):
        verify_ticket(forged, trust, NOW)


def test_kid_swapped_to_a_trusted_key_is_bad_signature(issuer_key, trust):
    rogue = SigningKey.generate()
    payload = encode({4: NOW + DAY, 5: NOW - 10, 7: b"x" * 16, -65537: {1: "potala"}})
    text = PREFIX + b45encode(sign1(payload, kid_for(issuer_key.verify_key), rogue))
    with pytest.raises(errors.BadSignature):
        verify_ticket(text, trust, NOW)


def test_one_flipped_bit_in_the_payload_breaks_the_signature(mint, trust):
    raw = bytearray(b45decode(mint()[len(PREFIX):]))
    raw[40] ^= 0x01  # inside the payload claims
    with pytest.raises(errors.TicketError) as caught:
        verify_ticket(PREFIX + b45encode(bytes(raw)), trust, NOW)
    assert caught.value.reason in ("bad_signature", "malformed")


def test_key_outside_its_window_no_longer_verifies(issuer_key, mint):
    text = mint()
    windowed = TrustStore([TrustedKey("sales", issuer_key.verify_key, not_before=NOW - DAY, not_after=NOW)])
    assert verify_ticket(text, windowed, NOW - 1).key.name == "sales"
    with pytest.raises(errors.KeyNotValid):
        verify_ticket(text, windowed, NOW)
    with pytest.raises(errors.KeyNotValid):
        verify_ticket(text, windowed, NOW - DAY - 1)


def test_key_removed_from_the_store_no_longer_verifies(mint):
    with pytest.raises(errors.UnknownKey):
        verify_ticket(mint(), TrustStore([]), NOW)


def test_wrong_prefix_is_named(mint):
    with pytest.raises(errors.WrongPrefix, match="LT1:"):
        read_ticket("HC1:" + mint()[4:])


def test_oversized_text_is_refused_before_decoding():
    with pytest.raises(errors.Oversized):
        read_ticket(PREFIX + "0" * 5000)


def test_truncated_ticket_is_malformed(mint):
    text = mint()
    for cut in (5, 30, len(text) // 2, len(text) - 3):
        with pytest.raises(errors.TicketError) as caught:
            read_ticket(text[:cut])
        assert caught.value.reason == "malformed"


def test_other_algorithm_is_refused_even_with_a_valid_looking_structure(issuer_key):
    protected = encode({1: -7, 4: kid_for(issuer_key.verify_key)})  # ES256
    message = encode([protected, {}, encode({4: NOW + DAY, 5: NOW, 7: b"y" * 16, -65537: {1: "potala"}}), b"\0" * 64])
    with pytest.raises(errors.UnsupportedAlgorithm, match="-7"):
        read_ticket(PREFIX + b45encode(message))


def test_missing_kid_is_refused(issuer_key):
    message = encode([encode({1: -8}), {}, encode({}), b"\0" * 64])
    with pytest.raises(errors.BadStructure, match="kid"):
        read_ticket(PREFIX + b45encode(message))


def test_kid_in_the_unprotected_header_only_selects_the_key(issuer_key, trust):
    claims = make_claims()
    kid = kid_for(issuer_key.verify_key)
    protected = encode({1: -8})
    payload = encode(claims_to_cbor(claims))
    signature = issuer_key.sign(encode(["Signature1", protected, b"", payload])).signature
    text = PREFIX + b45encode(encode([protected, {4: kid}, payload, signature]))
    assert verify_ticket(text, trust, NOW).claims == claims
    swapped = PREFIX + b45encode(encode([protected, {4: kid}, payload, SigningKey.generate().sign(b"x").signature]))
    with pytest.raises(errors.BadSignature):
        verify_ticket(swapped, trust, NOW)


@pytest.mark.parametrize(
    "claims, complaint",
    [
        ({4: NOW, 5: NOW - 1, 7: b"z" * 16}, "-65537"),
        ({4: NOW, 5: NOW - 1, 7: b"z" * 16, -65537: {1: 42}}, "site"),
        ({4: "tomorrow", 5: NOW - 1, 7: b"z" * 16, -65537: {1: "potala"}}, "exp"),
        ({4: NOW, 5: NOW - 1, 7: b"short", -65537: {1: "potala"}}, "cti"),
        ({4: NOW, 5: NOW - 1, 7: b"z" * 16, -65537: {1: "potala", 4: True}}, "persons"),
        ({4: NOW, 5: NOW - 1, 7: b"z" * 16, -65537: {1: "potala", 7: [600, 540]}}, "slot"),
        ({4: NOW, 5: NOW - 1, 7: b"z" * 16, -65537: {1: "potala", 99: 1}}, "unknown"),
        ({4: NOW - 5, 5: NOW, 7: b"z" * 16, -65537: {1: "potala"}}, "exp is not after nbf"),
        ({4: NOW, 5: NOW - 1, 7: b"z" * 16, -65537: {1: "potala", 3: 200}}, "type code"),
    ],
)
def test_type_confused_claims_are_refused_with_the_claim_named(issuer_key, trust, claims, complaint):
    text = PREFIX + b45encode(sign1(encode(claims), kid_for(issuer_key.verify_key), issuer_key))
    with pytest.raises(errors.BadClaims, match=complaint):
        verify_ticket(text, trust, NOW)


def test_trailing_bytes_after_the_message_are_refused(mint):
    raw = b45decode(mint()[len(PREFIX):]) + b"\x00"
    with pytest.raises(errors.BadStructure, match="trailing"):
        read_ticket(PREFIX + b45encode(raw))


@pytest.mark.parametrize("size", [0, 5, 23, 24, 255, 256, 65535, 65536])
def test_hand_built_sig_structure_matches_the_cbor_library(size):
    from protocol.cose import _sig_structure

    protected, payload = b"\xa1\x01\x27", bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert _sig_structure(protected, payload) == encode(["Signature1", protected, b"", payload])
