"""``Validator.scan`` as the daemon calls it, beside a bare fsync'ed SQLite commit and a bare verify.

Three kinds of scan, each recorded durably as the daemon records it (the
validator built as ``lungta gate run`` builds it, with a turnstile, so an
admission also writes its open-admission row):
- first scan of a valid ticket (an admission: usage, quota, event, open row);
- rescan of a used ticket (an ``already_used`` deny and its event);
- a forged ticket (a ``bad_signature`` deny and its event);
denials are committed without an fsync of their own (they open nothing).
Bare limits in the same run, interleaved: one WAL commit of one small row
into the same file, with and without its fsync, and one Ed25519 verify of
the same bytes.

Run: python -m bench.bench_scan [--rounds 600]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.health import GateHealth
from gate.hublink import HubLinkState
from gate.parts import open_gate_parts
from gate.rules import GateRules
from gate.validator import Validator
from protocol.claims import TicketClaims
from protocol.ticket import issue_ticket, new_ticket_id, read_ticket
from protocol.trust import TrustedKey, TrustStore

from .stats import interleaved, machine, percentile


def _ticket(key: SigningKey, now: int) -> str:
    return issue_ticket(TicketClaims(ticket_id=new_ticket_id(), site="potala", not_before=now - 60, expires=now + 3600, issued_at=now - 60), key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=600)
    args = parser.parse_args(argv)
    key, forger = SigningKey.generate(), SigningKey.generate()
    now = int(time.time())
    trust = TrustStore([TrustedKey("sales", key.verify_key)])
    fresh = iter([_ticket(key, now) for _ in range(args.rounds + 400)])
    used, forged = _ticket(key, now), _ticket(forger, now)
    message = read_ticket(used).sign1
    signed, signature = message.to_be_signed(), message.signature
    print(f"# bench_scan: {machine()}; {args.rounds} interleaved rounds each")
    with tempfile.TemporaryDirectory(prefix="lungta-bench-scan-") as tmp:
        health = GateHealth()
        parts = open_gate_parts(Path(tmp), health, clock=GateClock(0), hub=HubLinkState(online=True))
        validator = Validator(GateRules("potala", gate_id="bench"), trust, parts.store, parts.revocations, parts.clock, parts.hub, health, frozenset({"entry"}))
        validator.scan(used)
        with parts.store.transaction() as tx:  # the bare commits go to the same file, connection and pragmas
            tx.execute("CREATE TABLE bare (n INTEGER)")

        def bare_commit(durable: bool = True) -> None:
            with parts.store.transaction(durable) as tx:
                tx.execute("INSERT INTO bare VALUES (1)")

        samples = interleaved({
            "first scan (admission, durable)": lambda: validator.scan(next(fresh)),
            "rescan (already_used deny, no fsync)": lambda: validator.scan(used),
            "forged (bad_signature deny, no fsync)": lambda: validator.scan(forged),
            "bare fsync'ed commit (WAL, FULL)": bare_commit,
            "bare commit, no fsync (WAL, NORMAL)": lambda: bare_commit(False),
            "bare Ed25519 verify": lambda: key.verify_key.verify(signed, signature),
        }, args.rounds, batch=50)
        parts.close()
    commit = statistics.median(samples["bare fsync'ed commit (WAL, FULL)"])
    print(f"{'step':40} {'median':>10} {'p95':>10} {'p99':>10} {'/ bare commit':>14}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:40} {median * 1e3:8.3f} ms {percentile(values, 0.95) * 1e3:7.3f} ms {percentile(values, 0.99) * 1e3:7.3f} ms {median / commit:13.2f}x")


if __name__ == "__main__":
    main()
