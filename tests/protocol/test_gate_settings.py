"""Gate settings in births and heartbeats: decoded typed and bounded; an older gate's report without them still decodes."""

from __future__ import annotations

import pytest

from protocol.gate_messages import GateSettings, decode_health, encode_health, gate_settings_map
from protocol.messages import MalformedMessage

INCARNATION = bytes(16)


def _report(**fields: object) -> bytes:
    return encode_health({"bdseq": 1, "at": 1_000, "incarnation": INCARNATION, "next_seq": 1, "version": "1.0", **fields})


def test_a_heartbeat_carries_the_gates_settings_typed():
    claimed = GateSettings(10.0, "Asia/Shanghai", ("0011223344556677",))
    report = decode_health("heartbeat", _report(**gate_settings_map(claimed)))
    assert report.settings == claimed
    assert report.fields["timezone"] == "Asia/Shanghai", "kept as a plain field too, so the stored view shows it"


def test_an_older_gates_birth_without_settings_decodes_with_none():
    report = decode_health("birth", _report())
    assert report.settings is None and report.fields["version"] == "1.0"


@pytest.mark.parametrize("fields, why", [
    ({"heartbeat_s": 0, "timezone": "UTC"}, "heartbeat_s"),
    ({"heartbeat_s": "10", "timezone": "UTC"}, "heartbeat_s"),
    ({"heartbeat_s": 10, "timezone": "x" * 65}, "timezone"),
    ({"heartbeat_s": 10, "timezone": "UTC", "hub_kids": "not-hex-at-all!!"}, "hub_kids"),
    ({"heartbeat_s": 10, "timezone": "UTC", "hub_kids": ",".join(["0011223344556677"] * 9)}, "hub_kids"),
])
def test_settings_out_of_bounds_are_malformed(fields, why):
    with pytest.raises(MalformedMessage, match=why):
        decode_health("heartbeat", _report(**fields))
