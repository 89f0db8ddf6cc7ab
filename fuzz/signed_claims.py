"""Harness: claims the trusted issuer really signed, with a fuzzed clock, gate rules and state.

Run: python -m fuzz.signed_claims -runs=1000000. The first bytes choose the
time, the direction, the gate's zone, timezone and policies and what the
state answers (usage with its time, revoked, quota, clock trusted, hub
online); the rest is the CWT claims payload, signed with the issuer key, so
every input gets past the signature into the claims and the rules. Findings:
any exception out of ``decide``; a grant that breaks a rule a gate must keep
(outside nbf..exp, another site or zone, revoked, over the entries, over the
quota, on an untrusted clock under the deny policy).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gate.decision import Reason
from gate.engine import decide
from gate.rules import ClockPolicy, Direction, GateRules, OfflinePolicy, Usage
from protocol.base45 import b45encode
from protocol.claims import TicketType
from protocol.cose import sign1
from protocol.keys import kid_for
from protocol.ticket import PREFIX

from .driver import Draw, run
from .fixtures import ISSUER, NOW, SITE, TRUST, claims_seeds
from .state import FixedState

KID = kid_for(ISSUER.verify_key)
ZONES = (None, "white-palace", "red-palace")
TIMEZONES = (ZoneInfo("Asia/Shanghai"), ZoneInfo("UTC"), ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12"))
TIMES = (NOW, 0, 2**31 - 1, 2**32, 2**37, 253402300799)  # now, the epoch, 2038, 2106, the claims bound, year 9999
STATE_BYTES = 27  # what _setting draws: 1 + 4 + 5 + 2 + 1 + 1 + 8 + 2 + 3


def _setting(draw: Draw) -> tuple[int, GateRules, Direction, FixedState]:
    now = int(draw.choice(TIMES)) + draw.integer(4) - 2**31  # around a chosen instant, either side
    rules = GateRules(SITE, gate_id="east-1", zone=draw.choice(ZONES), timezone=draw.choice(TIMEZONES),
                      clock_policy=draw.choice(tuple(ClockPolicy)), offline_policy=draw.choice(tuple(OfflinePolicy)))
    direction = draw.choice((Direction.ENTRY, Direction.EXIT))
    usage = Usage(entries=draw.integer(2), exits=draw.integer(1), today=draw.integer(1), last_gate="west-2", last_at=draw.integer(8) or None)
    quota = draw.integer(2)
    state = FixedState(usage, revoked=draw.byte() < 16, quota=None if quota >= 0x8000 else quota - 0x4000, trusted=draw.byte() >= 32, online=draw.byte() >= 32)
    return max(now, 0), rules, direction, state


def one_input(data: bytes) -> None:
    draw = Draw(data[:STATE_BYTES])
    now, rules, direction, state = _setting(draw)
    text = PREFIX + b45encode(sign1(data[STATE_BYTES:], KID, ISSUER))
    decision = decide(text, now, rules, TRUST, state, direction)
    if not decision.granted:
        assert decision.detail, decision
        return
    claims = decision.ticket
    assert claims.not_before <= now < claims.expires and claims.site == SITE and not state.revoked, (now, claims)
    assert rules.zone is None or rules.zone in claims.zones, (rules.zone, claims.zones)
    assert state.trusted or rules.clock_policy is ClockPolicy.ADMIT_FLAGGED, "granted on an untrusted clock"
    if decision.reason is Reason.VALID:
        assert not claims.entries or state.usage_of_ticket.consumed(claims.reentry) < claims.entries, (claims.entries, state)
        assert claims.ticket_type is TicketType.STAFF or state.quota is None or state.quota >= claims.persons, (state.quota, claims.persons)


def seeds() -> list[bytes]:
    at_now = bytes([0]) + (2**31).to_bytes(4, "big")  # TIMES[0] and no offset
    fresh = at_now + bytes(5) + bytes(12) + b"\xff\xff" + b"\xff\xff\xff"  # main area, entry, no usage, no quota
    used = at_now + bytes([0, 1, 1, 1, 1]) + b"\x00\x01\x00\x01" + (NOW - 60).to_bytes(8, "big") + b"\x00\x05" + b"\xff\x00\xff"
    assert len(fresh) == len(used) == STATE_BYTES
    return [setting + payload for setting in (fresh, used) for payload in claims_seeds()]


if __name__ == "__main__":
    raise SystemExit(run("signed_claims", one_input, seeds))
