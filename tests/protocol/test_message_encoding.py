"""Gate and hub messages use the accepted encoding too (hub-protocol.md section 7)."""

import cbor2
import pytest

from protocol.gate_messages import EventData, EventKind, GateEvent, decode_events, decode_health, encode_events, encode_health
from protocol.messages import MalformedMessage


def _event(data: object, value_sharing: bool = False) -> bytes:
    """An events payload whose event data is ``data``, as cbor2 would let a rogue gate write it."""
    event = {"event_id": b"\x01" * 16, "gate": "east-1", "incarnation": b"\x05" * 16, "seq": 1, "kind": "deny", "at": 5, "ticket_id": None, "data": data}
    return cbor2.dumps([event], value_sharing=value_sharing)


def test_a_self_referencing_event_map_is_malformed_not_a_poison_message():
    """Issue 10: shared-value tags 28/29 made the hub's re-encode raise inside its batch, forever."""
    data: dict = {}
    data["self"] = data
    with pytest.raises(MalformedMessage, match="tag 28 is not accepted"):
        decode_events(_event(data, value_sharing=True))


@pytest.mark.parametrize("value, why", [(cbor2.CBORTag(37, "x"), "tag 37"), (1.5, "float"), (cbor2.undefined, "simple value 23")])
def test_event_data_outside_the_accepted_encoding_is_malformed(value, why):
    with pytest.raises(MalformedMessage, match=why):
        decode_events(_event({"detail": value}))


def test_a_heartbeat_may_carry_a_float_temperature_but_not_nan():
    assert decode_health("heartbeat", encode_health({"temperature_c": 48.5})).fields["temperature_c"] == 48.5
    with pytest.raises(MalformedMessage, match="not finite"):
        decode_health("heartbeat", encode_health({"temperature_c": float("nan")}))


def test_our_own_events_still_decode():
    event = GateEvent(b"\x02" * 16, "east-1", b"\x05" * 16, 3, EventKind.ADMISSION, 7, b"\x03" * 12, EventData(persons=2, extra={"flagged": False, "detail": None}))
    assert decode_events(encode_events([event])) == [event]
