"""The audit log's hash chain: each entry commits to the one before it.

``hash = SHA-256(previous hash || canonical JSON of the entry)``, the first
entry chained to 64 zeros. Changing, removing or reordering any entry
breaks every hash after it, which ``verify_chain`` finds; an attacker who
can rewrite the whole file can rewrite the chain too, so ``lungta hub audit
verify`` also prints the head hash for an operator to note off the box
(docs/console.md). Entries are appended by ``hub.console.store`` inside the
transaction of the action they record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """One state-changing action: who (name, role, kind of credential), from where, what, when."""

    seq: int
    at_ms: int
    actor: str
    role: str
    via: str       # "user" | "token" | "os-user"
    origin: str    # remote address, or "cli@host"
    action: str
    detail: dict
    prev_hash: str
    hash: str

    def as_dict(self) -> dict:
        return asdict(self)


def entry_hash(prev_hash: str, seq: int, at_ms: int, actor: str, role: str, via: str, origin: str, action: str, detail: dict) -> str:
    body = json.dumps([seq, at_ms, actor, role, via, origin, action, detail], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found: entries checked, the head hash, and the first break (or None)."""

    entries: int
    head: str
    broken_at: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(entries: Iterable[AuditEntry]) -> ChainReport:
    prev, count, expected_seq = GENESIS, 0, 1
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainReport(count, prev, entry.seq, f"entry {entry.seq} follows {expected_seq - 1}: entries were removed")
        if entry.prev_hash != prev:
            return ChainReport(count, prev, entry.seq, f"entry {entry.seq} does not chain to entry {entry.seq - 1}")
        computed = entry_hash(prev, entry.seq, entry.at_ms, entry.actor, entry.role, entry.via, entry.origin, entry.action, entry.detail)
        if computed != entry.hash:
            return ChainReport(count, prev, entry.seq, f"entry {entry.seq} was changed after it was written")
        prev, count, expected_seq = entry.hash, count + 1, expected_seq + 1
    return ChainReport(count, prev)
