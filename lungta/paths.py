"""Folders and databases the commands are given, checked before anything opens them.

A state directory that is a file, a database path that is a folder or not
SQLite, a place the service user cannot write: each is one line naming the
path and the option or key it came from, before SQLite or the revocation
store would answer with a traceback (or, for a mistyped database path,
silently create an empty database).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .errors import CommandError

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.sqlite_store import SqliteHubStore

Store = TypeVar("Store", bound="SqliteHubStore")

SQLITE_HEADER = b"SQLite format 3\x00"


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def _probe(directory: Path) -> str | None:
    """Why nothing can be created in ``directory`` (tried for real: permissions, read-only mounts, root), or None."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lungta-probe-", dir=directory))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_writable_dir(path: Path, where: str) -> None:
    """``path`` is a writable directory, or one that can be created; ``where`` names its option or key."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise CommandError(f"{where}: {existing} is a file, not a directory" if existing == path else f"{where}: {path}: {existing} is a file, not a directory")
    problem = _probe(existing)
    if problem is not None:
        raise CommandError(f"{where}: {path}: not writable ({problem})" if existing == path else f"{where}: {path}: cannot be created in {existing} ({problem})")


def make_dir(path: Path, where: str) -> None:
    """Create ``path`` (0700) when missing; every refusal is one line naming ``where``."""
    check_writable_dir(path, where)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{where}: {path}: cannot create: {exc.strerror}") from None


def check_database(path: Path, where: str, must_exist: bool) -> None:
    """A hub database path: a SQLite file (or, when it may be created, a free name in a writable folder).

    ``must_exist`` is for commands that only read (``hub gates``, ``quota
    list``): a mistyped path is an error there, never a new empty database
    that makes a site look as if no gate ever reported.
    """
    if path.is_dir():
        raise CommandError(f"{where}: {path} is a directory, not a database file")
    if not path.exists():
        if must_exist:
            raise CommandError(f"{where}: {path} does not exist (the hub creates it when it first runs; check the path)")
        if not path.parent.is_dir():
            raise CommandError(f"{where}: {path}: folder {path.parent} does not exist")
        problem = _probe(path.parent)
        if problem is not None:
            raise CommandError(f"{where}: {path}: cannot be created in {path.parent} ({problem})")
        return
    if not path.is_file():  # a FIFO would block the open below, a device would be read as a database
        raise CommandError(f"{where}: {path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise CommandError(f"{where}: {path}: cannot read: {exc.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise CommandError(f"{where}: {path} is not a SQLite database")
    problem = _probe(path.parent) or (None if os.access(path, os.W_OK) else "permission denied")
    if problem is not None:
        raise CommandError(f"{where}: {path}: not writable ({problem}; SQLite also writes beside it, in {path.parent})")


@contextmanager
def hub_database(config: "HubConfig", source: Path | None, kind: type[Store], must_exist: bool = False) -> Iterator[Store]:
    """The hub database as a ``kind`` store (SqliteHubStore or ConsoleStore), checked first, closed after.

    ``source`` is the hub.toml it was configured in (None: a caller that has only the HubConfig).

    Every way it can fail is one line naming hub.toml's ``hub.database`` and the file: a folder,
    a non-SQLite file or (for reading commands) a missing file before opening it; a lock held too
    long, a read-only or damaged file while opening or using it (SQLite errors, HubStoreError).
    """
    from hub.sqlite_tables import HubStoreError

    where = f"{source}: hub.database" if source is not None else "hub.database"
    check_database(config.database, where, must_exist)
    try:
        store = kind(config.database, config.synchronous)
    except (sqlite3.Error, HubStoreError) as error:
        raise CommandError(f"{where}: {_without_path(error, config.database)}") from None
    try:
        yield store
    except sqlite3.Error as error:
        raise CommandError(f"{where}: {config.database}: {error}") from None
    finally:
        store.close()


def _without_path(error: Exception, path: Path) -> str:
    """The error's message, starting with the database path once (HubStoreError names it already)."""
    text = str(error)
    return text if text.startswith(str(path)) else f"{path}: {text}"
