"""Harness: any bytes inside the base45 of a ticket, through the strict decoder and the engine.

Run: python -m fuzz.cose_bytes -runs=1000000. Each input is decoded by
``protocol.cbor.decode_exactly`` with every option on (floats, the ticket's
outer tags), then as a ticket ``LT1:`` + base45(bytes) decided by the real
engine. Findings: anything but BadStructure from the decoder, a value of a
type the decoder must not return, any exception out of ``decide``, a grant
for bytes that are not a genuine ticket.
"""

from __future__ import annotations

from gate.engine import decide
from protocol.base45 import b45encode
from protocol.cbor import Tagged, decode_exactly
from protocol.errors import BadStructure
from protocol.ticket import MAX_TEXT_LENGTH, PREFIX

from .driver import run
from .fixtures import GENUINE, NOW, RULES, TRUST, cose_seeds
from .state import FixedState

STATE = FixedState()
PLAIN = (dict, list, int, bytes, str, bool, type(None), float)


def _check_plain(value: object) -> None:
    """Only the plain types of the accepted encoding, all the way down."""
    if isinstance(value, Tagged):
        assert value.tag in (18, 61), value.tag
        _check_plain(value.value)
        return
    assert type(value) in PLAIN, type(value)
    if type(value) is list:
        for item in value:
            _check_plain(item)
    elif type(value) is dict:
        for key, item in value.items():
            assert type(key) in (int, str), type(key)
            _check_plain(item)


def one_input(data: bytes) -> None:
    try:
        _check_plain(decode_exactly(data, "fuzz input", allow_floats=True, outer_tags=(61, 18)))
    except BadStructure as error:
        assert str(error).startswith("fuzz input "), error
    text = PREFIX + b45encode(data[:MAX_TEXT_LENGTH])
    decision = decide(text, NOW, RULES, TRUST, STATE)
    assert not decision.granted or text in GENUINE, f"granted bytes nobody issued: {data.hex()}"


def seeds() -> list[bytes]:
    return cose_seeds()


if __name__ == "__main__":
    raise SystemExit(run("cose_bytes", one_input, seeds))
