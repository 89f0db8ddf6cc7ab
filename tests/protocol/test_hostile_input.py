"""Property tests: no input, however broken, escapes as anything but a TicketError."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol.base45 import ALPHABET, b45decode, b45encode
from protocol.cbor import encode
from fuzz.hostile import ISSUE_10_CODES, claims_with, hostile_tickets, raw_map, signed_text
from protocol.errors import TicketError
from protocol.keys import kid_for
from protocol.ticket import PREFIX, verify_ticket
from testkit.tickets import NOW


def _outcome(text: str, trust) -> str:
    try:
        verify_ticket(text, trust, NOW)
    except TicketError as error:
        assert error.reason in {"malformed", "unknown_key", "key_not_valid", "bad_signature"}
        assert str(error)
        return error.reason
    return "valid"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # no deadline: these check outcomes, not speed, and CI machines are loaded
@given(st.text(max_size=300))
def test_random_text_is_refused_with_a_reason(trust, text):
    assert _outcome(text, trust) != "valid"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # no deadline: these check outcomes, not speed, and CI machines are loaded
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_random_base45_after_the_prefix_is_refused_with_a_reason(trust, body):
    assert _outcome(PREFIX + body, trust) != "valid"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # no deadline: these check outcomes, not speed, and CI machines are loaded
@given(st.binary(max_size=300))
def test_random_cbor_bytes_are_refused_with_a_reason(trust, raw):
    assert _outcome(PREFIX + b45encode(raw), trust) != "valid"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # no deadline: these check outcomes, not speed, and CI machines are loaded
@given(data=st.data())
def test_mutated_genuine_tickets_never_verify_and_never_crash(mint, trust, data):
    raw = bytearray(b45decode(mint()[len(PREFIX):]))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    position = data.draw(st.integers(0, len(raw) - 1))
    assume(not (mutation == "delete" and position == 0))  # dropping the optional tag 18 keeps the same ticket
    if mutation == "flip":
        raw[position] ^= 1 << data.draw(st.integers(0, 7))
    elif mutation == "truncate":
        del raw[position:]
    elif mutation == "insert":
        raw.insert(position, data.draw(st.integers(0, 255)))
    else:
        del raw[position]
    assert _outcome(PREFIX + b45encode(bytes(raw)), trust) != "valid"


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("9bffffffffffffffff"),  # array declaring 2^64-1 items
        bytes.fromhex("5bffffffffffffffff"),  # byte string declaring 2^64-1 bytes
        b"\x81" * 5000,  # nesting deep enough to exhaust a naive recursive decoder
        bytes.fromhex("d284") + b"\x40" * 3 + bytes.fromhex("c249") + b"\xff" * 9,  # bignum where a signature belongs
    ],
)
def test_hostile_cbor_is_malformed_not_a_crash(trust, raw):
    text = PREFIX + b45encode(raw)
    if len(text) <= 1024:
        assert _outcome(text, trust) == "malformed"


# ---- regressions for issue 10: tags, duplicates, non-integer labels, crit ---------------

@pytest.mark.parametrize("text", ISSUE_10_CODES)
def test_issue_10_qr_codes_are_malformed_on_every_scan(trust, text):
    for _ in range(20):  # cbor2 failed the regex one only after a few scans
        with pytest.raises(TicketError, match="tag 3[57] is not accepted") as caught:
            verify_ticket(text, trust, NOW)
        assert caught.value.reason == "malformed"


def _claims_bytes() -> bytes:
    return encode({4: NOW + 3600, 5: NOW - 60, 7: b"t" * 12, -65537: {1: "potala"}})


def test_a_signed_ticket_that_verifies_is_the_control(issuer_key, trust):
    assert verify_ticket(signed_text(issuer_key, _claims_bytes()), trust, NOW).claims.site == "potala"


def _claims_with(lungta: bytes, *extra: tuple[bytes, bytes]) -> bytes:
    return claims_with(NOW, lungta, *extra)


SITE_PAIR = (encode(1), encode("potala"))


@pytest.mark.parametrize(
    "payload, why",
    [
        (_claims_with(raw_map(SITE_PAIR), (encode(4), encode(NOW + 9 * 3600))), "map key 4 repeated"),  # exp twice: cbor2 kept the last
        (_claims_with(raw_map(SITE_PAIR, SITE_PAIR)), "map key 1 repeated"),
        (_claims_with(raw_map(SITE_PAIR, (b"\xf5", encode(4)))), "bool"),  # {true: 4}: True == 1 in a Python dict
        (_claims_with(raw_map(SITE_PAIR, (bytes.fromhex("f93c00"), encode(4)))), "float"),  # {1.0: 4}
        (_claims_with(raw_map(SITE_PAIR), (b"\xf4", encode(1))), "bool"),  # {false: 1} among the CWT claims
    ],
)
def test_signed_claims_with_duplicate_or_non_integer_labels_are_malformed(issuer_key, trust, payload, why):
    with pytest.raises(TicketError, match=why) as caught:
        verify_ticket(signed_text(issuer_key, payload), trust, NOW)
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "overrides, why",
    [({3: "2"}, "type is a str"), ({4: True}, "persons is a bool"), ({10: 1}, "reentry is a int"), ({7: [540.0, 600]}, "float")],
)
def test_signed_claims_of_the_wrong_type_are_malformed(issuer_key, trust, overrides, why):
    payload = encode({4: NOW + 3600, 5: NOW - 60, 7: b"t" * 12, -65537: {1: "potala", **overrides}})
    with pytest.raises(TicketError, match=why) as caught:
        verify_ticket(signed_text(issuer_key, payload), trust, NOW)
    assert caught.value.reason == "malformed"


def test_crit_listing_only_understood_headers_is_accepted(issuer_key, trust):
    protected = {1: -8, 4: kid_for(issuer_key.verify_key), 2: [4]}
    assert verify_ticket(signed_text(issuer_key, _claims_bytes(), protected), trust, NOW).claims.site == "potala"


@pytest.mark.parametrize(
    "extra_protected, unprotected, why",
    [
        ({2: [99]}, {}, "crit names header"),
        ({2: [4, "exp"]}, {}, "crit names header"),
        ({2: []}, {}, "non-empty array"),
        ({2: 4}, {}, "non-empty array"),
        ({}, {2: [99]}, "must be in the protected header"),
        ({}, {1: -8}, "in both"),
    ],
)
def test_crit_not_understood_and_headers_in_both_buckets_are_malformed(issuer_key, trust, extra_protected, unprotected, why):
    protected = {1: -8, 4: kid_for(issuer_key.verify_key), **extra_protected}
    with pytest.raises(TicketError, match=why) as caught:
        verify_ticket(signed_text(issuer_key, _claims_bytes(), protected, unprotected), trust, NOW)
    assert caught.value.reason == "malformed"


def test_every_hostile_ticket_the_live_gate_test_scans_is_malformed(issuer_key, trust):
    texts = hostile_tickets(issuer_key, NOW)
    assert [_outcome(text, trust) for text in texts] == ["malformed"] * len(texts)
