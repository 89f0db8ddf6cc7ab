"""Harness: any bytes as a trust list arriving at a gate, and as a payload the site root really signed.

Run: python -m fuzz.trust_list -runs=1000000. The first byte picks the way in:

- the bytes as they arrived on ``lungta/<site>/hub/trust`` (what a broker
  login or a compromised hub can publish), into the gate's real
  ``TrustListKeeper`` (its file in a scratch state directory);
- a COSE_Sign1 really signed with the site root around the fuzzed payload,
  so the signature holds and the payload decoder is reached.

Findings: any exception out of ``TrustListKeeper.receive`` or other than a
``TrustListError`` out of ``open_trust_list``; a list installed from
unsigned bytes that is not one the root signed (the seeds).
"""

from __future__ import annotations

from nacl.signing import SigningKey

from gate.trustlist import TrustListKeeper
from protocol.cose import decode_sign1, sign1
from protocol.keys import kid_for
from protocol.trust import TrustedKey
from protocol.trustlist import TrustList, TrustListError, new_trust_list, open_trust_list, sign_trust_list

from .driver import Draw, run, scratch_dir, seeded
from .fixtures import ISSUER, NOW, SITE

ROOT = SigningKey(seeded(3))
GENUINE = [
    new_trust_list(SITE, 1, NOW, [TrustedKey("sales", ISSUER.verify_key)]),
    new_trust_list(SITE, 2, NOW + 60, [TrustedKey("sales", ISSUER.verify_key, NOW - 86_400, NOW + 86_400), TrustedKey("sales2", SigningKey(seeded(4)).verify_key, NOW)]),
    new_trust_list(SITE, 3, NOW + 120, []),
]
GENUINE_BYTES = [sign_trust_list(trust_list, ROOT) for trust_list in GENUINE]
REBUILD = 5000


class _Gate:
    """A keeper over a scratch state directory, made anew every REBUILD inputs (its installed version only grows)."""

    def __init__(self) -> None:
        self.keeper: TrustListKeeper | None = None
        self.installed: list[TrustList] = []
        self.count = 0

    def get(self) -> TrustListKeeper:
        if self.keeper is None or self.count % REBUILD == 0:
            self.keeper = TrustListKeeper(scratch_dir("trust-list"), SITE, ROOT.verify_key, self.installed.append)
        self.count += 1
        return self.keeper


GATE_UNDER_TEST = _Gate()


def one_input(data: bytes) -> None:
    draw = Draw(data)
    if draw.byte() % 2:
        payload = data[draw.pos:]
        try:
            open_trust_list(sign1(payload, kid_for(ROOT.verify_key), ROOT), ROOT.verify_key, SITE)
        except TrustListError:
            return  # refused as it should be; any other exception propagates as a finding
        return
    arrived = data[draw.pos:]
    before = len(GATE_UNDER_TEST.installed)
    GATE_UNDER_TEST.get().receive(arrived)
    for trust_list in GATE_UNDER_TEST.installed[before:]:
        assert trust_list in GENUINE, f"installed a list the root never signed: {trust_list}"


def seeds() -> list[bytes]:
    return [b"\x00" + data for data in GENUINE_BYTES] + [b"\x01" + decode_sign1(data).payload for data in GENUINE_BYTES]


if __name__ == "__main__":
    raise SystemExit(run("trust_list", one_input, seeds))
