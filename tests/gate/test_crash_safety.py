"""SIGKILL at random instants never loses an event, never admits a ticket twice, never breaks the state.

A real ``lungta gate validate --state`` process is fed a burst of tickets on
stdin and killed while it is working; after every kill the state is
reopened and checked. Each printed decision was committed before it was
printed, so it must be found again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import date

from gate.cache.state import GateStore
from protocol.keys import write_key_pair
from protocol.ticket import read_ticket

CYCLES = int(os.environ.get("LUNGTA_CRASH_CYCLES", "25"))
AT = "2026-11-18T12:00:00+08:00"


def test_kill_9_at_random_moments_loses_nothing_and_admits_nothing_twice(tmp_path, issuer_key, mint):
    _, public = write_key_pair(issuer_key, tmp_path / "keys", "sales")
    singles = [mint() for _ in range(12)]
    doubles = [mint(entries=2) for _ in range(6)]
    limit = {read_ticket(t).claims.ticket_id: read_ticket(t).claims.entries for t in singles + doubles}
    state = tmp_path / "state"
    rng = random.Random(20261123)
    printed_grants: Counter[bytes] = Counter()
    printed_seqs: set[int] = set()
    command = [sys.executable, "-m", "lungta", "gate", "validate", "--trust", str(public), "--site", "potala", "--state", str(state), "--at", AT]
    for _ in range(CYCLES):
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        burst = [rng.choice(singles + doubles + ["LT1:BROKEN"]) for _ in range(60)]
        child.stdin.write("\n".join(burst) + "\n")
        child.stdin.flush()
        for _ in range(rng.randrange(0, 30)):
            line = child.stdout.readline()
            if not line:
                break
            record = json.loads(line)
            printed_seqs.add(record["event_seq"])
            if record["decision"] == "grant":
                printed_grants[bytes.fromhex(record["ticket"]["ticket_id"])] += 1
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdin.close()
        child.stdout.close()
        _check_invariants(state, printed_seqs, printed_grants, limit)
    assert printed_seqs, "the child never got to decide anything"


def _check_invariants(state, printed_seqs, printed_grants, limit) -> None:
    with GateStore.open(state) as store:
        assert store.integrity_ok()
        events = store.pending_events(limit=1_000_000)
        seqs = [event.seq for event in events]
        assert seqs == list(range(1, len(seqs) + 1)), "event sequence has a hole"
        assert printed_seqs <= set(seqs), "a decision that was printed is missing from the outbox"
        admissions = Counter(event.ticket_id for event in events if event.kind == "admission")
        for ticket_id, entries in limit.items():
            assert admissions[ticket_id] <= entries, f"ticket {ticket_id.hex()} admitted {admissions[ticket_id]} times"
            assert printed_grants[ticket_id] <= admissions[ticket_id]
            usage = store.usage(ticket_id, "main", date(2026, 11, 18))
            assert usage.entries == admissions[ticket_id], "usage and events disagree"
