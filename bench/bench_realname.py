"""Real-name tickets: the binding's cost and its parameters, ticket size and QR version with
and without real-name fields, and card-to-decision time through a SAM reader on a pty.

The binding's cost is CPU time per call (``time.process_time``: what a search pays, less
disturbed by the other processes on a shared machine than wall time), beside the bare
limit measured in the same run: one SHA-256 of the same input, which is what the old
format cost an attacker per guess.

Run: .venv/bin/python -m bench.bench_realname [--rounds N] [--cards N]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.hublink import HubLinkState
from gate.idcard.sam import SamSettings
from gate.realname.check import IdCheck
from gate.realname.policy import HolderCheck, RealNamePolicy
from gate.realname.settings import IdCheckSettings, open_id_reader
from gate.rules import Direction, GateRules
from gate.scanner.base import Scan
from gate.validator import open_validator
from protocol.claims import TicketClaims, TicketType, TimeSlot, holder_id_hash
from protocol.holder import BINDING_VERSIONS, CURRENT_VERSION, bind_holder, resident_check_character
from protocol.qr import ticket_qr
from protocol.ticket import issue_ticket, new_ticket_id
from protocol.trust import TrustedKey, TrustStore
from testkit.fake_sam_reader import FakeSamReader

from .stats import machine, percentile

HOLDER = "54010219900101123" + resident_check_character("54010219900101123")
SECRET = os.urandom(32)
ID_SPACE = 1.3e11  # plausible mainland resident ID numbers (docs/security.md)
YEAR = 365.25 * 86400


def cpu_ms(function: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.process_time()
        function()
        out.append((time.process_time() - start) * 1000)
    return out


def binding_costs(rounds: int) -> None:
    print(f"binding cost per guess, CPU time, {rounds} rounds each (search of {ID_SPACE:.1e} IDs on one core of this machine)")
    salt, password = os.urandom(32), HOLDER.encode()
    sha = cpu_ms(lambda: [hashlib.sha256(salt[:12] + password).digest() for _ in range(10_000)], 5)
    bare_ms = statistics.median(sha) / 10_000
    print(f"  {'old format: SHA-256 (bare limit)':44s} {bare_ms * 1000:9.2f} us/guess   full search {ID_SPACE * bare_ms / 1000 / 3600:8.1f} core-hours")
    candidates = [(f"argon2id m={m // 1024} MiB t={t}", m, t) for m, t in ((8192, 3), (16384, 1), (16384, 2), (16384, 3), (32768, 2))]
    current = BINDING_VERSIONS[CURRENT_VERSION]
    for label, memory, passes in candidates:
        samples = cpu_ms(lambda: hash_secret_raw(password, salt, time_cost=passes, memory_cost=memory, parallelism=1, hash_len=16, type=Type.ID), rounds)
        _report(label + ("  <- v1" if (memory, passes) == (current.memory_kib, current.iterations) else ""), samples, bare_ms)
    for n in (2**13, 2**14):
        samples = cpu_ms(lambda: hashlib.scrypt(password, salt=salt, n=n, r=8, p=1, dklen=16, maxmem=64 * 1024 * 1024), rounds)
        _report(f"scrypt N=2^{n.bit_length() - 1} r=8 ({n // 1024} MiB)", samples, bare_ms)
    ticket_id = new_ticket_id()
    samples = cpu_ms(lambda: bind_holder(ticket_id, HOLDER, SECRET), rounds)
    _report("bind_holder (v1, with normalisation and salt)", samples, bare_ms)


def _report(label: str, samples: list[float], bare_ms: float) -> None:
    median = statistics.median(samples)
    years = ID_SPACE * median / 1000 / YEAR
    print(f"  {label:44s} median {median:6.1f} ms  p90 {percentile(samples, 0.9):6.1f} ms  x{median / bare_ms:9.0f} bare   full search {years:6.0f} core-years")


def ticket_sizes(key: SigningKey) -> None:
    print("ticket size (characters of QR text) and QR version at level M")
    now = int(time.time())
    base = TicketClaims(ticket_id=new_ticket_id(), site="potala", not_before=now, expires=now + 86400, issued_at=now, slot=TimeSlot(540, 600))
    rich = dataclasses.replace(base, zones=("red-palace",), ticket_type=TicketType.GROUP, persons=8, entries=2, entries_per_day=1, reentry=True)
    with_issuer = dataclasses.replace(rich, issuer="potala-sales")
    for label, claims in (("plain", base), ("rich (zone, group, entries, per day, re-entry)", rich), ("rich + optional iss claim", with_issuer)):
        binding = bind_holder(claims.ticket_id, HOLDER, SECRET)
        variants = (
            ("", claims),
            (" + real name (binding, masked name)", dataclasses.replace(claims, holder_binding=binding, holder_name="扎*次仁")),
            (" + old format (SHA-256, masked name)", dataclasses.replace(claims, holder_hash=holder_id_hash(claims.ticket_id, HOLDER), holder_name="扎*次仁")),
        )
        for suffix, variant in variants:
            text = issue_ticket(variant, key)
            print(f"  {label + suffix:80s} {len(text):4d} chars  QR {ticket_qr(text).version}-M")


def card_to_decision(cards: int) -> None:
    """Time from a card laid on the reader to the decision, and its parts."""
    key = SigningKey.generate()
    trust = TrustStore([TrustedKey("sales", key.verify_key)])
    fake = FakeSamReader()
    settings = IdCheckSettings((SamSettings(fake.device, poll_seconds=0.05),), SECRET, timeout_seconds=30)
    totals, binds = [], []
    with tempfile.TemporaryDirectory(prefix="lungta-bench-") as tmp:
        clock = GateClock(0)
        validator = open_validator(Path(tmp), GateRules("potala", gate_id="bench", realname=RealNamePolicy(HolderCheck.REQUIRED)), trust, clock=clock, hub=HubLinkState(online=True))
        check = IdCheck(validator, [open_id_reader(r) for r in settings.readers], settings)
        check.start()
        try:
            for index in range(cards):
                first17 = f"5401021990010{index:04d}"
                holder = first17 + resident_check_character(first17)  # a new visitor each time: no dedupe, no stale read
                now = clock.read().now
                claims = TicketClaims(ticket_id=new_ticket_id(), site="potala", not_before=now - 60, expires=now + 3600)
                text = issue_ticket(dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, holder, SECRET)), key)
                first = validator.scan(text)
                fake.remove()
                placed = time.monotonic()
                threading.Timer(0, fake.place, args=(holder,)).start()
                result = check.complete(Scan(text, "bench", placed), Direction.ENTRY, first, lambda: None)
                assert result.decision.granted, result.decision
                totals.append((time.monotonic() - placed) * 1000)
                start = time.perf_counter()
                bind_holder(claims.ticket_id, holder, SECRET)
                binds.append((time.perf_counter() - start) * 1000)
        finally:
            check.stop()
            validator.close()
            fake.close()
    print(f"card laid on a SAM reader (pty, poll every 50 ms) to decision, {cards} cards")
    print(f"  card to decision: median {statistics.median(totals):6.1f} ms  p90 {percentile(totals, 0.9):6.1f} ms  max {max(totals):6.1f} ms")
    print(f"  of which the binding (wall time): median {statistics.median(binds):6.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="calls per KDF setting")
    parser.add_argument("--cards", type=int, default=30, help="cards read through the pty reader")
    args = parser.parse_args(argv)
    print(f"bench_realname: {machine()}")
    binding_costs(args.rounds)
    ticket_sizes(SigningKey.generate())
    card_to_decision(args.cards)


if __name__ == "__main__":
    main()
