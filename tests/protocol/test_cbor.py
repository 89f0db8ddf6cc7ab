"""The strict decoder: exactly the accepted encoding of docs/protocol.md, BadStructure for anything else."""

import math

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.cbor import MAX_DEPTH, Tagged, decode_exactly, encode
from protocol.errors import BadStructure


def refused(data: bytes, match: str = "", **options: object) -> None:
    with pytest.raises(BadStructure, match=match):
        decode_exactly(data, "test item", **options)


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.integers(-(2**64), 2**64 - 1) | st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(plain_values)
def test_every_value_we_encode_decodes_to_itself(value):
    assert decode_exactly(encode(value), "value") == value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_value_or_bad_structure_and_nothing_else(data):
    try:
        decode_exactly(data, "random", allow_floats=True, outer_tags=(18, 61))
    except BadStructure as error:
        assert str(error).startswith("random ")


@pytest.mark.parametrize(
    "data, why",
    [
        (cbor2.dumps(cbor2.CBORTag(37, "AB8AB8AB8AB8AB8AB8AB8AB8")), "tag 37"),  # UUID around text: AssertionError in cbor2
        (cbor2.dumps(cbor2.CBORTag(35, "(")), "tag 35"),  # regex: RuntimeError in cbor2 after a few scans
        (bytes.fromhex("d81c81d81d00"), "tag 28"),  # shareable array holding a reference to itself
        (bytes.fromhex("c249") + b"\x01" * 9, "tag 2"),  # bignum
        (bytes.fromhex("9f01ff"), "indefinite"),  # indefinite-length array
        (bytes.fromhex("5f4101ff"), "indefinite"),
        (bytes.fromhex("bf0101ff"), "indefinite"),
        (bytes.fromhex("1817"), "shortest"),  # 23 in a two-byte head
        (bytes.fromhex("190017"), "shortest"),
        (bytes.fromhex("1a000000ff"), "shortest"),
        (bytes.fromhex("1b00000000ffffffff"), "shortest"),
        (bytes.fromhex("1c"), "reserved"),
        (bytes.fromhex("f7"), "simple value 23"),  # undefined
        (bytes.fromhex("f820"), "simple value 24"),
        (bytes.fromhex("a2010101"), "repeated"),  # {1: 1, 1: 1}
        (bytes.fromhex("a2616101616102"), "repeated"),  # {"a": 1, "a": 2}
        (bytes.fromhex("a1f501"), "bool"),  # {true: 1}: cbor2 reads it and Python says True == 1
        (bytes.fromhex("a1f93c0001"), "float"),  # {1.0: 1}
        (bytes.fromhex("a1410101"), "bytes"),  # byte-string key
        (bytes.fromhex("a1800101"), "list"),
        (bytes.fromhex("62c328"), "UTF-8"),  # invalid UTF-8 in a text string
        (bytes.fromhex("63eda080"), "UTF-8"),  # a lone surrogate
        (bytes.fromhex("9bffffffffffffffff"), "runs past the end"),  # 2^64-1 items, no allocation
        (bytes.fromhex("5bffffffffffffffff"), "runs past the end"),
        (bytes.fromhex("1a0001"), "ends early"),
        (b"", "ends in the middle"),
        (bytes.fromhex("82"), "runs past the end"),
        (bytes.fromhex("8118"), "ends in the middle"),
        (bytes.fromhex("0101"), "1 trailing byte"),
    ],
)
def test_hostile_encodings_are_refused_with_a_reason(data, why):
    refused(data, why)


def test_nesting_beyond_the_limit_is_refused_and_within_it_accepted():
    assert decode_exactly(b"\x81" * MAX_DEPTH + b"\x00", "nested") is not None
    refused(b"\x81" * (MAX_DEPTH + 1) + b"\x00", "nested too deep")
    refused(b"\x81" * 100_000 + b"\x00", "nested too deep")


def test_floats_only_where_allowed_and_only_finite():
    data = encode({"temperature_c": 48.5})
    refused(data, "float")
    assert decode_exactly(data, "heartbeat", allow_floats=True) == {"temperature_c": 48.5}
    for half in ("f93c00", "fa3f800000", "fb3ff0000000000000"):
        assert decode_exactly(bytes.fromhex(half), "one", allow_floats=True) == 1.0
    for bad in ("f97e00", "f97c00", "fb7ff8000000000000"):  # NaN, +inf, NaN
        refused(bytes.fromhex(bad), "not finite", allow_floats=True)
    assert not math.isnan(decode_exactly(bytes.fromhex("f90000"), "zero", allow_floats=True))


def test_outer_tags_are_returned_only_when_allowed_and_only_around_the_top_item():
    cwt = cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(18, [1])))
    assert decode_exactly(cwt, "ticket", outer_tags=(61, 18)) == Tagged(61, Tagged(18, [1]))
    refused(cwt, "tag 61")
    refused(cbor2.dumps(cbor2.CBORTag(18, cbor2.CBORTag(18, [1]))), "tag 18", outer_tags=(18,))
    refused(cbor2.dumps([cbor2.CBORTag(18, [1])]), "tag 18", outer_tags=(18,))


def test_true_false_null_are_python_singletons_and_not_integers():
    assert decode_exactly(bytes.fromhex("83f4f5f6"), "simple") == [False, True, None]
    assert [type(v) for v in decode_exactly(bytes.fromhex("83f4f5f6"), "simple")] == [bool, bool, type(None)]
