"""The real-name binding: minted into a ticket, read back, checked against an ID; nothing in
the ticket lets the number be found without the site secret."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat

import pytest

from protocol.claims import claims_from_cbor, claims_to_cbor, describe_claims
from protocol.errors import BadClaims
from protocol.holder import (HolderBinding, HolderIdError, SiteSecretError, bind_holder, normalise_holder_id,
                             read_site_secret, resident_check_character, same_binding, write_site_secret)
from protocol.qr import ticket_qr
from protocol.ticket import issue_ticket, read_ticket
from testkit.tickets import make_claims

HOLDER = "54010219900101123" + resident_check_character("54010219900101123")
OTHER = "54010219900101124" + resident_check_character("54010219900101124")
SECRET = bytes(range(32))


def test_binding_round_trips_through_the_ticket_and_matches_only_the_holder(issuer_key):
    claims = make_claims()
    claims = dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, SECRET), holder_name="扎*次仁")
    read = read_ticket(issue_ticket(claims, issuer_key)).claims
    assert read.holder_binding == claims.holder_binding
    assert same_binding(read.holder_binding, bind_holder(claims.ticket_id, HOLDER.lower().replace("x", "X"), SECRET))
    assert not same_binding(read.holder_binding, bind_holder(claims.ticket_id, OTHER, SECRET))


def test_binding_depends_on_ticket_and_site_secret_so_tickets_are_unlinkable():
    one, two = os.urandom(12), os.urandom(12)
    assert bind_holder(one, HOLDER, SECRET) != bind_holder(two, HOLDER, SECRET)
    assert bind_holder(one, HOLDER, SECRET) != bind_holder(one, HOLDER, bytes(32))


def test_ticket_text_holds_neither_the_number_nor_its_plain_hash(issuer_key):
    claims = make_claims()
    claims = dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, SECRET))
    text = issue_ticket(claims, issuer_key)
    payload = read_ticket(text).sign1.payload
    for needle in (HOLDER.encode(), hashlib.sha256(claims.ticket_id + HOLDER.encode()).digest()[:16], hashlib.sha256(HOLDER.encode()).digest()[:16]):
        assert needle not in payload


def test_real_name_ticket_fits_qr_version_10_at_level_m(issuer_key):
    claims = make_claims(zones=("red-palace",), holder_name="扎*次仁")
    claims = dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, SECRET))
    assert ticket_qr(issue_ticket(claims, issuer_key)).version <= 10


@pytest.mark.parametrize("typed, expected", [
    (" 5401 0219 9001 0112 3" + HOLDER[-1].lower(), HOLDER),
    ("５４０１０２１９９００１０１１２３" + HOLDER[-1], HOLDER),  # full-width digits from a Chinese input method
    ("e1234-5678", "E12345678"),  # a passport
    ("C1234567 8", "C12345678"),  # a Mainland travel permit for HK/Macau residents
])
def test_typed_ids_are_normalised(typed, expected):
    assert normalise_holder_id(typed) == expected


@pytest.mark.parametrize("typed, fault", [
    ("540102199001011235" if HOLDER[-1] != "5" else "540102199001011236", "check character"),
    ("12", "4..32"),
    ("扎西次仁扎西次仁", "letters and digits"),
    ("LT1:6BFOXN*TS0BI$ZD", "letters and digits"),  # a ticket scanned into the ID reader
])
def test_text_that_is_not_an_id_number_is_refused_without_echoing_it(typed, fault):
    with pytest.raises(HolderIdError, match=fault) as caught:
        normalise_holder_id(typed)
    assert typed not in str(caught.value)


def test_unknown_binding_version_is_a_clear_error():
    with pytest.raises(ValueError, match="version 9 is not known"):
        bind_holder(os.urandom(12), HOLDER, SECRET, version=9)


def test_malformed_binding_claims_are_refused():
    cwt = claims_to_cbor(make_claims())
    for bad in ([1], [0, bytes(16)], [1, bytes(8)], "v1", [1, "digest"]):
        cwt[-65537][11] = bad
        with pytest.raises(BadClaims, match="holder_binding"):
            claims_from_cbor(cwt)


def test_inspect_shows_the_binding_version_not_an_id():
    claims = dataclasses.replace(make_claims(), holder_binding=HolderBinding(1, bytes(16)))
    assert describe_claims(claims)["holder_binding"] == "v1:" + "00" * 16


def test_site_secret_file_is_private_and_checked(tmp_path):
    path = tmp_path / "holder.secret"
    write_site_secret(path, SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_site_secret(path) == SECRET
    with pytest.raises(FileExistsError):
        write_site_secret(path, SECRET)
    path.write_text("abcd\n")
    with pytest.raises(SiteSecretError, match="2 bytes, expected 32"):
        read_site_secret(path)
    with pytest.raises(SiteSecretError, match="cannot read"):
        read_site_secret(tmp_path / "missing")
