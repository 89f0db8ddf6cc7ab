import base45 as reference
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.base45 import ALPHABET, b45decode, b45encode
from protocol.errors import BadEncoding


@given(st.binary(max_size=600))
def test_encoding_matches_the_reference_implementation(data: bytes) -> None:
    assert b45encode(data) == reference.b45encode(data).decode("ascii")


@given(st.binary(max_size=600))
def test_decoding_inverts_encoding(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


@given(st.text(alphabet=ALPHABET, max_size=60))
def test_decoder_agrees_with_reference_on_any_alphabet_text(text: str) -> None:
    try:
        expected: bytes | None = reference.b45decode(text)
    except ValueError:
        expected = None
    try:
        actual: bytes | None = b45decode(text)
    except BadEncoding:
        actual = None
    assert actual == expected


@pytest.mark.parametrize(
    "text, complaint",
    [("A", "dangling"), ("GGW", "above 65535"), ("ab", "not base45"), ("Ω12", "non-ASCII"), ("ZZ", "above 255")],
)
def test_invalid_text_is_refused_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(BadEncoding, match=complaint):
        b45decode(text)


def test_rfc9285_examples() -> None:
    assert b45encode(b"AB") == "BB8"
    assert b45encode(b"Hello!!") == "%69 VD92EX0"
    assert b45decode("QED8WEX0") == b"ietf!"
