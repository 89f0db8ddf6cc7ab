"""Interoperability with an independent COSE/CWT implementation (python-cwt), both ways.

python-cwt checks exp/nbf against the wall clock, so these tickets are valid now.
"""

import dataclasses

import cbor2
import cwt
import pytest
from cwt import COSEKey

from protocol.base45 import b45decode, b45encode
from protocol.claims import TicketType, TimeSlot, claims_to_cbor
from protocol.errors import BadSignature
from protocol.keys import kid_for, private_key_pem, public_key_pem
from protocol.ticket import PREFIX, issue_ticket, verify_ticket
from testkit.tickets import make_claims


@pytest.fixture
def current_claims(wall_now):
    return dataclasses.replace(
        make_claims(slot=TimeSlot.parse("08:00-12:00"), persons=3, ticket_type=TicketType.SENIOR),
        not_before=wall_now - 60,
        expires=wall_now + 3600,
        issued_at=wall_now - 120,
    )


def test_lungta_ticket_verifies_with_python_cwt(issuer_key, current_claims):
    cose_bytes = b45decode(issue_ticket(current_claims, issuer_key)[len(PREFIX):])
    public = COSEKey.from_pem(public_key_pem(issuer_key.verify_key), kid=kid_for(issuer_key.verify_key))
    decoded = cwt.decode(cose_bytes, public)
    assert decoded[7] == current_claims.ticket_id
    assert decoded[-65537] == {1: "potala", 3: int(TicketType.SENIOR), 4: 3, 7: [480, 720]}


def test_ticket_minted_by_python_cwt_is_accepted_by_lungta(issuer_key, trust, current_claims, wall_now):
    private = COSEKey.from_pem(private_key_pem(issuer_key), kid=kid_for(issuer_key.verify_key))
    text = PREFIX + b45encode(cwt.encode(claims_to_cbor(current_claims), private))
    assert verify_ticket(text, trust, wall_now).claims == current_claims


def test_python_cwt_ticket_with_a_swapped_payload_is_refused(issuer_key, trust, current_claims, wall_now):
    private = COSEKey.from_pem(private_key_pem(issuer_key), kid=kid_for(issuer_key.verify_key))
    message = cbor2.loads(cwt.encode(claims_to_cbor(current_claims), private)).value
    forged = [message[0], message[1], cbor2.dumps(claims_to_cbor(dataclasses.replace(current_claims, persons=50))), message[3]]
    with pytest.raises(BadSignature):
        verify_ticket(PREFIX + b45encode(cbor2.dumps(cbor2.CBORTag(18, forged))), trust, wall_now)
