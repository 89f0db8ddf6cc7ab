"""Signed trust lists: only the pinned site root's, only for this site, only newer, and any bytes are one clear error."""

from __future__ import annotations

import cbor2
import pytest
from nacl.signing import SigningKey

from protocol.cbor import encode
from protocol.cose import sign1
from protocol.keys import kid_for
from protocol.trust import TrustedKey
from protocol.trustlist import (
    TYP,
    ForgedTrustList,
    MalformedTrustList,
    StaleTrustList,
    TrustListError,
    WrongSiteTrustList,
    check_newer,
    new_trust_list,
    open_trust_list,
    sign_trust_list,
)
from protocol.errors import KeyNotValid, UnknownKey
from testkit.tickets import NOW, SITE


@pytest.fixture
def root() -> SigningKey:
    return SigningKey.generate()


def _signed(root: SigningKey, version: int = 1, *keys: TrustedKey, site: str = SITE) -> bytes:
    return sign_trust_list(new_trust_list(site, version, NOW, keys), root)


def test_a_list_signed_by_the_root_opens_with_its_keys_and_windows(root: SigningKey) -> None:
    sales, sales2 = SigningKey.generate(), SigningKey.generate()
    data = _signed(root, 7, TrustedKey("sales", sales.verify_key, None, NOW + 10), TrustedKey("sales2", sales2.verify_key, NOW - 10))
    opened = open_trust_list(data, root.verify_key, SITE)
    assert (opened.site, opened.version, opened.issued_at) == (SITE, 7, NOW)
    store = opened.trust_store()
    assert store.key_for(kid_for(sales2.verify_key), NOW).name == "sales2"
    with pytest.raises(KeyNotValid):
        store.key_for(kid_for(sales.verify_key), NOW + 10)


def test_a_withdrawn_key_is_unknown_to_the_store_the_list_makes(root: SigningKey) -> None:
    withdrawn = SigningKey.generate()
    store = open_trust_list(_signed(root, 2, TrustedKey("sales2", SigningKey.generate().verify_key)), root.verify_key).trust_store()
    with pytest.raises(UnknownKey):
        store.key_for(kid_for(withdrawn.verify_key), NOW)


def test_a_list_signed_by_another_key_is_forged(root: SigningKey) -> None:
    with pytest.raises(ForgedTrustList) as caught:
        open_trust_list(_signed(SigningKey.generate()), root.verify_key)
    assert caught.value.reason == "bad_signature"


def test_a_list_with_the_root_kid_but_another_signature_is_forged(root: SigningKey) -> None:
    impostor = SigningKey.generate()
    payload = cbor2.loads(cbor2.loads(_signed(impostor)).value[2])
    forged = sign1(encode(payload), kid_for(root.verify_key), impostor)  # claims the root's kid
    with pytest.raises(ForgedTrustList, match="does not verify"):
        open_trust_list(forged, root.verify_key)


def test_a_changed_byte_in_the_payload_breaks_the_signature(root: SigningKey) -> None:
    data = bytearray(_signed(root, 5, TrustedKey("sales", SigningKey.generate().verify_key)))
    data[data.index(b"sales")] ^= 0x01  # "sales" -> "rales"
    with pytest.raises(ForgedTrustList):
        open_trust_list(bytes(data), root.verify_key)


def test_another_sites_list_is_refused(root: SigningKey) -> None:
    with pytest.raises(WrongSiteTrustList):
        open_trust_list(_signed(root, site="jokhang"), root.verify_key, SITE)


def test_rollback_and_replay_are_stale_only_a_higher_version_is_newer(root: SigningKey) -> None:
    three = open_trust_list(_signed(root, 3), root.verify_key)
    check_newer(three, None)
    check_newer(three, 2)
    for installed in (3, 4):
        with pytest.raises(StaleTrustList) as caught:
            check_newer(three, installed)
        assert caught.value.reason == "stale"


def test_a_root_signature_over_another_payload_is_not_a_trust_list(root: SigningKey) -> None:
    payload = {"typ": "lungta-ticket", "site": SITE, "version": 1, "issued_at": NOW, "keys": []}
    with pytest.raises(MalformedTrustList, match="typ"):
        open_trust_list(sign1(encode(payload), kid_for(root.verify_key), root), root.verify_key)


@pytest.mark.parametrize("data", [
    b"",
    b"\xff",
    b"\xd2\x84",  # tag 18 around an array that ends at once
    encode(cbor2.CBORTag(18, [b"", {}, b"", b""])),
    encode(cbor2.CBORTag(99, [b"", {}, b"", b"\x00" * 64])),  # a tag the decoder does not accept
    b"\x9f\xff",  # indefinite length
    b"\x00" * (64 * 1024 + 1),  # larger than any list
])
def test_malformed_bytes_are_one_malformed_error(root: SigningKey, data: bytes) -> None:
    with pytest.raises(MalformedTrustList):
        open_trust_list(data, root.verify_key)


def _with_payload(root: SigningKey, payload: object) -> bytes:
    return sign1(encode(payload), kid_for(root.verify_key), root)


def _key_entry(signing: SigningKey, **fields: object) -> dict:
    return {"name": "sales", "kid": kid_for(signing.verify_key), "key": bytes(signing.verify_key), **fields}


@pytest.mark.parametrize("change", [
    lambda key: {"keys": [_key_entry(key, kid=b"\x00" * 8)]},  # kid not the key's
    lambda key: {"keys": [_key_entry(key), _key_entry(key)]},  # the same key twice
    lambda key: {"keys": [_key_entry(key, key=b"\x01" * 31)]},
    lambda key: {"keys": [_key_entry(key, not_before=10, not_after=5)]},
    lambda key: {"keys": [_key_entry(key, colour="red")]},
    lambda key: {"version": 0},
    lambda key: {"version": -1},
    lambda key: {"version": 2.5},
    lambda key: {"site": "no/slash"},
    lambda key: {"keys": "sales"},
    lambda key: {"extra": True},
])
def test_signed_but_malformed_payloads_are_refused_with_what_is_wrong(root: SigningKey, change) -> None:
    payload = {"typ": TYP, "site": SITE, "version": 1, "issued_at": NOW, "keys": [], **change(SigningKey.generate())}
    with pytest.raises(MalformedTrustList) as caught:
        open_trust_list(_with_payload(root, payload), root.verify_key)
    assert str(caught.value)


def test_a_duplicate_map_key_in_the_payload_is_refused_by_the_strict_decoder(root: SigningKey) -> None:
    good = encode({"typ": TYP, "site": SITE, "version": 1, "issued_at": NOW, "keys": []})
    doubled = b"\xa6" + good[1:] + encode("version") + encode(9)  # a sixth entry repeating "version"
    with pytest.raises(MalformedTrustList, match="repeated"):
        open_trust_list(sign1(doubled, kid_for(root.verify_key), root), root.verify_key)


def test_signing_refuses_what_a_reader_would_refuse(root: SigningKey) -> None:
    key = SigningKey.generate().verify_key
    with pytest.raises(TrustListError):
        new_trust_list(SITE, 1, NOW, [TrustedKey("a", key), TrustedKey("b", key)])
    with pytest.raises(TrustListError):
        new_trust_list(SITE, 0, NOW, [])
    with pytest.raises(TrustListError):
        new_trust_list(SITE, 1, NOW, [TrustedKey("x" * 65, key)])


def test_a_mutated_list_is_refused_with_a_trust_list_error_or_reads_as_the_signed_one(root: SigningKey) -> None:
    """Random byte edits: never another exception, and never other content (dropping the optional tag 18 is harmless)."""
    import random

    good = _signed(root, 3, TrustedKey("sales", SigningKey.generate().verify_key, NOW, NOW + 86_400))
    signed = open_trust_list(good, root.verify_key, SITE)
    rng = random.Random(13)
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            action = rng.randrange(3)
            position = rng.randrange(len(data))
            if action == 0:
                data[position] = rng.randrange(256)
            elif action == 1:
                del data[position]
            else:
                data.insert(position, rng.randrange(256))
        try:
            opened = open_trust_list(bytes(data), root.verify_key, SITE)
        except TrustListError:
            continue
        assert opened == signed
