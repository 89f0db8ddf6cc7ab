"""A damaged gate state is moved aside intact and the gate starts a new incarnation.

Running on a damaged or half-readable state could re-admit used tickets or
lose decisions without anyone noticing; refusing to start would close the
gate until somebody with a laptop arrives. So at start the state is checked
(GateStore.open(check=True), RevocationSet.open), and on damage:

- everything in the state directory moves to ``quarantine/<UTC time>/``
  inside it (the directory itself may be a systemd StateDirectory whose
  parent is read-only), untouched, for the operator and the post-mortem;
- a fresh state is made: a new incarnation id, so the hub never mistakes its
  seq 1 for the old state's (gate/cache/state.py);
- every event of the old outbox that can still be read goes into the new
  outbox, keeping its event id, so decisions not yet at the hub are not lost;
- one log line says what happened, and the caller raises the
  ``state_reset`` alarm the heartbeat carries.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from protocol.cbor import decode_exactly
from protocol.errors import BadStructure
from protocol.gate_messages import EventKind

from .private import make_private_dir
from .revocation_files import RevocationStoreError, StoreLocked
from .revocations import RevocationSet
from .schema import CorruptState
from .state import GateStore

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
REVOCATIONS = "revocations"
KNOWN_KINDS = frozenset(EventKind)  # str-equal: "deny" is in it


@dataclass(frozen=True)
class QuarantineReport:
    reason: str
    moved_to: Path
    salvaged: int
    unreadable: int


def open_state(state_dir: Path) -> tuple[GateStore, RevocationSet, QuarantineReport | None]:
    """The checked state, or a new one after quarantining a damaged one. Raises StateError for faults that are not damage."""
    try:
        return (*_open_checked(state_dir), None)
    except (CorruptState, RevocationStoreError) as exc:
        if isinstance(exc, StoreLocked):
            raise
        reason = " ".join(str(exc).split())  # one log line, whatever SQLite said
    moved_to = quarantine(state_dir)
    store = GateStore.open(state_dir, check=True)
    salvaged, unreadable = salvage_outbox(moved_to / GateStore.FILENAME, store)
    revocations = RevocationSet.open(state_dir / REVOCATIONS)
    report = QuarantineReport(reason, moved_to, salvaged, unreadable)
    log.error("gate state damaged (%s): moved to %s; %d unsent event(s) salvaged, %d unreadable; new incarnation %s",
              reason, moved_to, salvaged, unreadable, store.incarnation.hex())
    return store, revocations, report


def _open_checked(state_dir: Path) -> tuple[GateStore, RevocationSet]:
    store = GateStore.open(state_dir, check=True)
    try:
        return store, RevocationSet.open(state_dir / REVOCATIONS)
    except BaseException:
        store.close()
        raise


def quarantine(state_dir: Path) -> Path:
    """Move every entry of ``state_dir`` but earlier quarantines into a new timestamped folder; returns it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = state_dir / QUARANTINE / stamp
    make_private_dir(state_dir / QUARANTINE)
    make_private_dir(target)
    for entry in os.listdir(state_dir):
        if entry != QUARANTINE:
            os.rename(state_dir / entry, target / entry)
    return target


def salvage_outbox(old: Path, store: GateStore) -> tuple[int, int]:
    """Copy the readable events of a quarantined outbox into ``store``'s; returns (copied, unreadable).

    Reads row by row in seq order and stops at the first damaged page: what
    follows a damaged page cannot be trusted to be complete, and is counted
    as unreadable only when SQLite can still count it.
    """
    if not old.exists():
        return 0, 0
    rows: list[tuple] = []
    unreadable = 0
    try:
        source = sqlite3.connect(f"file:{old}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0, 0
    try:
        for row in source.execute("SELECT seq, event_id, kind, at_ms, ticket_id, data FROM outbox ORDER BY seq"):
            rows.append(row)
    except sqlite3.Error as exc:
        log.warning("%s: outbox readable up to %d event(s): %s", old, len(rows), exc)
        unreadable = 1
    finally:
        source.close()
    copied = 0
    with store.transaction() as db:
        for seq, event_id, kind, at_ms, ticket_id, data in rows:
            decoded = _decode(data)
            if decoded is None or kind not in KNOWN_KINDS or not isinstance(at_ms, int) or not isinstance(event_id, bytes):
                unreadable += 1  # an unknown kind would stop the upload of every event after it
                continue
            decoded["salvaged_seq"] = seq
            store.append_event(db, EventKind(kind), at_ms, ticket_id if isinstance(ticket_id, bytes) else None, decoded, event_id)
            copied += 1
    return copied, unreadable


def _decode(data: object) -> dict | None:
    """An event's data as this gate wrote it (a CBOR map), or None if the bytes are damaged."""
    if not isinstance(data, bytes):
        return None
    try:
        value = decode_exactly(data, "salvaged event data")
    except BadStructure:
        return None
    return value if isinstance(value, dict) else None
