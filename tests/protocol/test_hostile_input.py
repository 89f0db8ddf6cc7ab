"""Property tests: no input, however broken, escapes as anything but a TicketError."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol.base45 import ALPHABET, b45decode, b45encode
from protocol.errors import TicketError
from protocol.ticket import PREFIX, verify_ticket
from tests.conftest import NOW


def _outcome(text: str, trust) -> str:
    try:
        verify_ticket(text, trust, NOW)
    except TicketError as error:
        assert error.reason in {"malformed", "unknown_key", "key_not_valid", "bad_signature"}
        assert str(error)
        return error.reason
    return "valid"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_random_text_is_refused_with_a_reason(trust, text):
    assert _outcome(text, trust) != "valid"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_random_base45_after_the_prefix_is_refused_with_a_reason(trust, body):
    assert _outcome(PREFIX + body, trust) != "valid"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_cbor_bytes_are_refused_with_a_reason(trust, raw):
    assert _outcome(PREFIX + b45encode(raw), trust) != "valid"


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
