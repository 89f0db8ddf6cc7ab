"""Ticket text to decision, against a bare Ed25519 verify of the same bytes in the same run.

The decision runs on a gate state holding 1 million revocations (a hub
snapshot of random entries), as the gate-core issue asks; durable
admissions (one fsync'ed SQLite commit each) are measured separately.

Run: .venv/bin/python -m bench.bench_ticket
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.engine import decide
from gate.hublink import HubLinkState
from gate.rules import GateRules
from gate.health import GateHealth
from gate.parts import open_gate_parts
from gate.validator import StoreView, Validator
from protocol.claims import TicketClaims, TimeSlot
from protocol.ticket import issue_ticket, new_ticket_id, read_ticket, verify_ticket
from protocol.trust import TrustedKey, TrustStore
from gate.cache.revocations import RECORD_DTYPE, RevocationSet

from .stats import interleaved, machine, percentile, summary_us

REVOCATIONS = 1_000_000


def _ticket(key: SigningKey, now: int, **extra: object) -> str:
    claims = dict(ticket_id=new_ticket_id(), site="potala", not_before=now - 60, expires=now + 3600, issued_at=now - 60, slot=TimeSlot(0, 1440))
    claims.update(extra)
    return issue_ticket(TicketClaims(**claims), key)


def _fill_revocations(revocations: RevocationSet, now: int) -> None:
    rng = np.random.default_rng(1)
    records = np.empty(REVOCATIONS, RECORD_DTYPE)
    records["key"] = np.frombuffer(rng.bytes(12 * REVOCATIONS), "S12")
    records["expiry"] = now + 86_400
    revocations.replace_with_snapshot_records(1, records)


def main(rounds: int = 20_000) -> None:
    key = SigningKey.generate()
    now = int(time.time())
    trust = TrustStore([TrustedKey("sales", key.verify_key)])
    text = _ticket(key, now)
    message = read_ticket(text).sign1
    signed, signature, verify_key = message.to_be_signed(), message.signature, key.verify_key
    rules = GateRules("potala", gate_id="bench")
    with tempfile.TemporaryDirectory(prefix="lungta-bench-") as tmp:
        health = GateHealth()
        parts = open_gate_parts(Path(tmp), health, clock=GateClock(0), hub=HubLinkState(online=True))
        validator = Validator(rules, trust, parts.store, parts.revocations, parts.clock, parts.hub, health)
        _fill_revocations(parts.revocations, now)
        view = StoreView(parts.store, parts.revocations, parts.hub, now, True)
        results = interleaved(
            {
                "bare Ed25519 verify": lambda: verify_key.verify(signed, signature),
                "parse only": lambda: read_ticket(text),
                "parse + verify": lambda: verify_ticket(text, trust, now),
                "decision (engine+state)": lambda: decide(text, now, rules, trust, view),
            },
            rounds,
        )
        bare = statistics.median(results["bare Ed25519 verify"])
        print(f"# bench_ticket: {machine()}; ticket {len(text)} chars; {len(parts.revocations):,} revocations; {rounds} rounds each")
        for name, samples in results.items():
            print(f"{name:24} {summary_us(samples)}  ratio {statistics.median(samples) / bare:5.2f}")
        _admissions(validator, key, now)
        parts.close()


def _admissions(validator: Validator, key: SigningKey, now: int, count: int = 400) -> None:
    """Durable admissions: each is one fsync'ed commit of usage + outbox event."""
    texts = [_ticket(key, now) for _ in range(count)]
    samples = []
    for text in texts:
        start = time.perf_counter()
        assert validator.scan(text).decision.granted
        samples.append(time.perf_counter() - start)
    total = sum(samples)
    print(f"{'durable admission':24} median {statistics.median(samples) * 1e3:7.2f} ms  p99 {percentile(samples, 0.99) * 1e3:7.2f} ms  -> {count / total:,.0f} admissions/s (synchronous=FULL, this disk)")


if __name__ == "__main__":
    main()
