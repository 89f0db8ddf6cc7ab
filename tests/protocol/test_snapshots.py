"""Revocation snapshot chunks: the byte-slice reading of the hub's layout accepts exactly what the strict decoder does."""

from __future__ import annotations

import os

import pytest

from protocol.cbor import encode
from protocol.hub_messages import MAX_ITEMS, RevocationEntry, decode_revocations, revocations_body
from protocol.messages import MalformedMessage, decode_payload
from protocol.snapshots import _pack_uniform, _uniform_revocations, revocation_chunk_entries, snapshot_bodies

ENTRY = b"\x82\x50"  # [bytes(16), ...


def strict(data: bytes) -> list[RevocationEntry]:
    return decode_revocations(decode_payload(data, "chunk"))


def chunk(entries: list[RevocationEntry]) -> bytes:
    return encode(revocations_body(entries))


@pytest.mark.parametrize("count", [0, 1, 23, 24, 255, 256, 2000])
def test_a_chunk_of_the_hubs_layout_reads_as_the_strict_decoder_reads_it(count):
    entries = [RevocationEntry(os.urandom(16), expires) for expires in ([0x10000, 0xFFFFFFFF, 1_800_000_000] * count)[:count]]
    data = chunk(entries)
    assert _uniform_revocations(data) is not None, "the hub's own layout takes the byte-slice path"
    assert revocation_chunk_entries(data) == strict(data) == entries
    assert all(type(entry) is RevocationEntry for entry in revocation_chunk_entries(data))


def test_other_layouts_are_read_by_the_strict_decoder():
    entries = [RevocationEntry(b"a" * 12, 5), RevocationEntry(os.urandom(16), 300), RevocationEntry(os.urandom(32), 2**40)]
    for data in (chunk(entries), chunk(entries[1:2]), chunk(entries[2:])):
        assert _uniform_revocations(data) is None
        assert revocation_chunk_entries(data) == strict(data)


def item(ticket_id: bytes, expiry_head: bytes) -> bytes:
    return ENTRY + ticket_id + expiry_head


@pytest.mark.parametrize("data, why", [
    (b"\x81" + item(b"t" * 16, b"\x1a\x00\x00\xff\xff"), "an expiry below 65536 in a 4-byte head"),
    (b"\x98\x01" + item(b"t" * 16, b"\x1a\x00\x01\x00\x00"), "an array head of 1 in two bytes"),
    (b"\x81" + item(b"t" * 16, b"\x1a\x00\x01\x00\x00") + b"\x00", "a trailing byte"),
    (b"\x82" + item(b"t" * 16, b"\x1a\x00\x01\x00\x00"), "one item short of its count"),
    (b"\x81\x83\x50" + b"t" * 16 + b"\x1a\x00\x01\x00\x00", "an item of three elements"),
])
def test_a_defect_in_a_chunk_of_the_hubs_layout_is_refused_like_the_strict_decoder_refuses_it(data, why):
    with pytest.raises(MalformedMessage):
        strict(data)
    with pytest.raises(MalformedMessage):
        revocation_chunk_entries(data)


def test_a_chunk_of_more_entries_than_one_message_may_carry_is_refused():
    data = chunk([RevocationEntry(bytes(16), 0x10000)] * (MAX_ITEMS + 1))
    with pytest.raises(MalformedMessage):
        revocation_chunk_entries(data)


@pytest.mark.parametrize("count", [1, 23, 24, 255, 256, 65_535, 65_536])
def test_the_hub_packs_a_chunk_of_its_layout_byte_for_byte_as_the_cbor_encoder_does(count):
    items = revocations_body([RevocationEntry(os.urandom(16), expires) for expires in ([0x10000, 0xFFFFFFFF, 1_800_000_000] * count)[:count]])
    assert _pack_uniform(items) == encode(items)


def test_entries_outside_the_layout_are_encoded_by_the_cbor_encoder():
    for entries in ([RevocationEntry(b"a" * 12, 2_000_000_000)], [RevocationEntry(bytes(16), 0xFFFF)], [RevocationEntry(bytes(16), 2**32)]):
        items = revocations_body(entries)
        assert _pack_uniform(items) is None
        (body,) = snapshot_bodies("revocations", 1, items, 10, b"s" * 16)
        assert body["data"] == encode(items) and revocation_chunk_entries(body["data"]) == entries


def test_revocation_entries_chunk_as_their_wire_pairs_do():
    """The hub hands its entries over as they are (named pairs), without building a list per entry."""
    for entries in ([RevocationEntry(os.urandom(16), 1_800_000_000) for _ in range(25)], [RevocationEntry(b"a" * 12, 5), RevocationEntry(bytes(16), 2**40)]):
        assert snapshot_bodies("revocations", 3, entries, 10, b"s" * 16) == snapshot_bodies("revocations", 3, revocations_body(entries), 10, b"s" * 16)
