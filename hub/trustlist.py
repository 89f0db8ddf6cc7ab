"""The hub's side of trust lists: record a root-signed list, verify tickets with it, keep it retained for gates.

The site admin signs a trust list offline with the site root key
(``lungta site trust sign``) and hands it to the hub (``lungta hub trust
publish``, through the console's dispatcher, so it is audited like a
revocation). The hub cannot make or change a list: it verifies it against
the root pinned in hub.toml (``site_root``), refuses one not newer than
what it has, and records the signed bytes in its database. The running
hub notices the commit (as for ``lungta hub revoke``), verifies the newest
list again, verifies the tickets of later events with it instead of
hub.toml's ``trust``, and publishes it *retained* on
``lungta/<site>/hub/trust``: the broker hands it to every gate at each
(re)connect, so a gate that was away gets it as it comes back. It is
published again at every connect of the hub, in case the broker lost it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from nacl.signing import VerifyKey

from transport.mqtt import MqttLink
from protocol.topics import trust_topic
from protocol.trustlist import TrustList, TrustListError, check_newer, open_trust_list

from .ingest import EventChecker

log = logging.getLogger(__name__)

SCHEMA = "CREATE TABLE IF NOT EXISTS trust_lists (version INTEGER PRIMARY KEY, issued_at INTEGER NOT NULL, signed BLOB NOT NULL, recorded_ms INTEGER NOT NULL)"


def record_trust_list(db: sqlite3.Connection, signed: bytes, root: VerifyKey, site: str, now_ms: int) -> TrustList:
    """Verify ``signed`` against the site root and record it as the newest list; call inside a write transaction.

    Raises a ``TrustListError`` (forged, another site, malformed, or not newer
    than the newest recorded: ``StaleTrustList``); nothing is recorded then.
    """
    trust_list = open_trust_list(signed, root, site)
    db.execute(SCHEMA)  # one statement: stays inside the caller's transaction
    check_newer(trust_list, latest_version(db))
    db.execute("INSERT INTO trust_lists VALUES (?, ?, ?, ?)", (trust_list.version, trust_list.issued_at, signed, now_ms))
    return trust_list


def latest_version(db: sqlite3.Connection) -> int | None:
    if not _has_table(db):
        return None
    return db.execute("SELECT max(version) FROM trust_lists").fetchone()[0]


def latest_signed(db: sqlite3.Connection) -> bytes | None:
    if not _has_table(db):
        return None
    row = db.execute("SELECT signed FROM trust_lists ORDER BY version DESC LIMIT 1").fetchone()
    return None if row is None else row[0]


def _has_table(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trust_lists'").fetchone() is not None


class HubTrustLists:
    """The worker thread's trust list: the newest recorded one, in use and retained at the broker.

    Used by the hub's worker thread only (its own read connection to the
    hub database). ``changed()`` after another process committed;
    ``reconnected()`` after the hub's link came back; ``tick(link)`` between
    batches does the rest.
    """

    def __init__(self, database: Path, root: VerifyKey, site: str, checker: EventChecker) -> None:
        self._db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._root, self._site, self._checker = root, site, checker
        self.current: TrustList | None = None
        self._signed = b""
        self._dirty, self._unpublished = True, True
        self.refresh()
        if self.current is None:
            log.info("no trust list recorded yet: tickets are verified with hub.toml's trust until one is published (lungta hub trust publish)")

    def changed(self) -> None:
        self._dirty = True

    def reconnected(self) -> None:
        self._unpublished = True

    def refresh(self) -> TrustList | None:
        """Adopt the newest recorded list if it is newer than the one in use; returns it then."""
        self._dirty = False
        signed = latest_signed(self._db)
        if signed is None or signed == self._signed:
            return None
        try:
            trust_list = open_trust_list(signed, self._root, self._site)
            check_newer(trust_list, None if self.current is None else self.current.version)
        except TrustListError as error:  # recorded by hand or under another root: it stays unused
            log.error("trust list in the database not used reason=%s detail=%s", error.reason, error)
            self._signed = signed
            return None
        self.current, self._signed, self._unpublished = trust_list, signed, True
        self._checker.trust = trust_list.trust_store()
        log.warning("trust list in use version=%d keys=%s (verifying tickets of events with it, publishing it to the gates)", trust_list.version,
                    ",".join(f"{key.name}:{key.kid.hex()}" for key in trust_list.keys) or "-")
        return trust_list

    def tick(self, link: MqttLink) -> None:
        """Between batches: pick up a newly recorded list, and (re)publish the one in use, retained, while connected."""
        if self._dirty:
            self.refresh()
        if self.current is not None and self._unpublished and link.connected.is_set():
            link.publish(trust_topic(self._site), self._signed, retain=True)
            self._unpublished = False
            log.info("published trust list version %d on %s (retained)", self.current.version, trust_topic(self._site))

    def close(self) -> None:
        self._db.close()
