"""The published test vectors (tests/vectors/tickets.json) give the documented verdicts."""

import json
from datetime import datetime
from pathlib import Path

import pytest

from protocol.errors import TicketError
from protocol.keys import parse_verify_key
from protocol.ticket import verify_ticket
from protocol.trust import TrustedKey, TrustStore
from tests.vectors.generate import vectors as regenerate

DOCUMENT = json.loads((Path(__file__).parents[1] / "vectors" / "tickets.json").read_text(encoding="utf-8"))


def _store() -> TrustStore:
    window = DOCUMENT["trust_window"]
    return TrustStore([
        TrustedKey(
            "vector-issuer",
            parse_verify_key(DOCUMENT["issuer_public_key_pem"].encode(), "vector"),
            int(datetime.fromisoformat(window["not_before"]).timestamp()),
            int(datetime.fromisoformat(window["not_after"]).timestamp()),
        )
    ])


@pytest.mark.parametrize("vector", DOCUMENT["vectors"], ids=lambda v: v["name"])
def test_vector_gives_its_documented_verdict(vector):
    try:
        verify_ticket(vector["text"], _store(), vector["at"])
        verdict = "valid"
    except TicketError as error:
        verdict = error.reason
    assert verdict == vector["verdict"]


def test_vectors_are_reproducible_from_their_claims_and_seed_key():
    assert [v["text"] for v in regenerate()] == [v["text"] for v in DOCUMENT["vectors"]]
