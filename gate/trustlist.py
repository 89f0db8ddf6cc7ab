"""The gate's side of trust lists: verify against the pinned site root, refuse rollbacks, keep, swap.

A trust list (``protocol.trustlist``) arrives from the hub's retained topic
at every (re)connect, or is read from the state directory at start. It is
installed only if the site root key pinned in gate.toml (``[gate]
site_root``) signed it, it names this site and its version is newer than
the installed one. Installing is: write the signed bytes to
``STATE_DIR/trust-list.cose`` atomically (a temporary file, fsync, rename,
fsync of the directory), then hand the new TrustStore to the validator,
which swaps it whole between two scans. So a gate restarted without a
network decides with the last list it had, never with the local trust file
again; and a power cut leaves the old list or the new one, never half.

A list that fails is dropped: one WARNING line (``reason=`` ...) and a
count by reason, reported in the heartbeat (``trust_refused``). The same
list arriving again (the retained copy at each reconnect) is not news and
is not logged. A gate without a pinned root ignores trust lists, saying so
once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from nacl.signing import VerifyKey

from protocol.trustlist import MAX_TRUST_LIST_BYTES, TrustList, TrustListError, check_newer, open_trust_list

from .cache.private import open_private

log = logging.getLogger(__name__)

FILENAME = "trust-list.cose"
QUARANTINE = "quarantine"  # gate/cache/quarantine.py moves a damaged state here, this file with it


class TrustListKeeper:
    """Owns the installed trust list of one gate. Thread-safe: ``receive`` may run in the sync thread
    while the heartbeat reads ``version`` and ``refused``."""

    def __init__(self, state_dir: Path, site: str, root: VerifyKey | None, install: Callable[[TrustList], None]) -> None:
        """``install`` swaps the validator's trust store (``Validator.replace_trust``); it is called
        after the list is durably saved, so a list in use is always one a restart finds again."""
        self._state_dir, self._site, self._root, self._install = state_dir, site, root, install
        self._lock = threading.Lock()
        self._installed: TrustList | None = None
        self._installed_bytes = b""
        self._refused: dict[str, int] = {}
        self._ignored_logged = False

    @property
    def version(self) -> int | None:
        """The installed list's version; None while the gate trusts its local trust file."""
        with self._lock:
            return None if self._installed is None else self._installed.version

    @property
    def refused(self) -> int:
        with self._lock:
            return sum(self._refused.values())

    def refused_by_reason(self) -> dict[str, int]:
        with self._lock:
            return dict(self._refused)

    def load_saved(self) -> TrustList | None:
        """At start, before any scan: install the newest saved list that still verifies.

        The state directory's copy, or one in a quarantined state (a damaged
        state is moved aside whole; the list in it is as good as it was, and
        verified again here), so a state reset never falls back to the local
        trust file and a key withdrawn long ago.
        """
        if self._root is None:
            return None
        best: tuple[TrustList, bytes, Path] | None = None
        for path in self._saved_paths():
            data = read_saved(path)
            if data is None:
                continue
            try:
                candidate = open_trust_list(data, self._root, self._site)
            except TrustListError as error:
                log.warning("trust list refused source=%s reason=%s detail=%s", path, error.reason, error)
                continue
            if best is None or candidate.version > best[0].version:
                best = (candidate, data, path)
        if best is None:
            log.info("no trust list in %s yet: trusting the issuer keys of the local trust file until the hub sends one", self._state_dir)
            return None
        trust_list, data, path = best
        if path != self._state_dir / FILENAME:  # from a quarantined state: keep it in the new state too
            try:
                _save(self._state_dir / FILENAME, data)
            except OSError as error:
                log.error("trust list version %d from %s not copied into the state: %s", trust_list.version, path, error)
        with self._lock:
            self._apply(trust_list, data, source="state")
        return trust_list

    def receive(self, data: bytes) -> bool:
        """A trust list from the hub: True when it was installed. Never raises for what the network sends."""
        if self._root is None:
            if not self._ignored_logged:
                self._ignored_logged = True
                log.warning("trust list from the hub ignored: no site_root pinned in [gate] (only the local trust file counts)")
            return False
        with self._lock:
            if data == self._installed_bytes:
                return False  # the retained copy again, at a reconnect
            try:
                trust_list = open_trust_list(data, self._root, self._site)
                check_newer(trust_list, None if self._installed is None else self._installed.version)
                _save(self._state_dir / FILENAME, data)
            except TrustListError as error:
                self._refuse(error)
                return False
            except OSError as error:
                self._refused["storage"] = self._refused.get("storage", 0) + 1
                log.error("trust list not installed reason=storage detail=%s", error)
                return False
            self._apply(trust_list, data, source="hub")
            return True

    def _apply(self, trust_list: TrustList, data: bytes, source: str) -> None:
        self._install(trust_list)
        self._installed, self._installed_bytes = trust_list, data
        level = logging.WARNING if source == "hub" else logging.INFO  # a change of the keys is news; the same list at start is not
        log.log(level, "trust list installed version=%d source=%s keys=%s issued_at=%d", trust_list.version, source,
                    ",".join(f"{key.name}:{key.kid.hex()}" for key in trust_list.keys) or "-", trust_list.issued_at)

    def _refuse(self, error: TrustListError) -> None:
        self._refused[error.reason] = self._refused.get(error.reason, 0) + 1
        installed = None if self._installed is None else self._installed.version
        log.warning("trust list refused source=hub reason=%s installed=%s refused_total=%d detail=%s", error.reason, installed, sum(self._refused.values()), error)

    def _saved_paths(self) -> list[Path]:
        quarantined = sorted((self._state_dir / QUARANTINE).glob(f"*/{FILENAME}")) if (self._state_dir / QUARANTINE).is_dir() else []
        return [self._state_dir / FILENAME, *quarantined]


def read_saved(path: Path) -> bytes | None:
    """The saved list's bytes (a regular file, bounded, no symlink), or None when there is none or it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("trust list refused source=%s reason=unreadable detail=%s", path, error.strerror)
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        log.warning("trust list refused source=%s reason=unreadable detail=not a regular file", path)
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read(MAX_TRUST_LIST_BYTES + 1)
        except OSError as error:
            log.warning("trust list refused source=%s reason=unreadable detail=%s", path, error.strerror)
            return None


def _save(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably: the old list or the new one survive a power cut."""
    temporary = path.with_name(f".{path.name}.new")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # a leftover of a power cut; O_EXCL | O_NOFOLLOW below refuse anything planted since
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
