"""The trust store: which issuer keys a gate accepts, and when.

A trust store is a TOML file of ``[[key]]`` tables. Each names a public key
file (relative to the trust file) or holds the PEM inline, and may bound the
key's validity with ``not_before`` / ``not_after`` (TOML datetimes with an
offset). A key is looked up by kid; outside its window it no longer verifies,
so an issuer key can be rotated or retired by editing this one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nacl.signing import VerifyKey

from .errors import KeyFileError, KeyNotValid, UnknownKey
from .files import UnreadableFile, read_toml_file
from .keys import kid_for, load_verify_key, parse_verify_key


@dataclass(frozen=True)
class TrustedKey:
    """One issuer key; times are Unix seconds, None meaning unbounded."""

    name: str
    verify_key: VerifyKey
    not_before: int | None = None
    not_after: int | None = None

    @property
    def kid(self) -> bytes:
        return kid_for(self.verify_key)

    def valid_at(self, when: int) -> bool:
        if self.not_before is not None and when < self.not_before:
            return False
        return self.not_after is None or when < self.not_after


class TrustStore:
    """Issuer keys by kid. Immutable once built; a new store replaces it whole."""

    def __init__(self, keys: list[TrustedKey]) -> None:
        self._by_kid = {key.kid: key for key in keys}

    def __len__(self) -> int:
        return len(self._by_kid)

    def __iter__(self):
        return iter(self._by_kid.values())

    def key_for(self, kid: bytes, when: int) -> TrustedKey:
        """The key to verify with, or UnknownKey / KeyNotValid naming the kid."""
        key = self._by_kid.get(kid)
        if key is None:
            raise UnknownKey(f"no trusted key has kid {kid.hex()}")
        if not key.valid_at(when):
            raise KeyNotValid(f"key {key.name!r} (kid {kid.hex()}) is not valid at {when}")
        return key


def load_trust_store(path: Path) -> TrustStore:
    """Load a trust.toml, or a single .pub file trusted without a window."""
    if path.suffix == ".pub":
        return TrustStore([TrustedKey(path.stem, load_verify_key(path))])
    try:
        document = read_toml_file(path)
    except UnreadableFile as error:
        raise KeyFileError(f"{error.path}: {error.reason.replace('cannot read', 'cannot read trust store', 1)}") from None
    entries = document.get("key", [])
    if not isinstance(entries, list):
        raise KeyFileError(f"{path}: 'key' must be an array of tables ([[key]])")
    return TrustStore([_trusted_key(path, index, entry) for index, entry in enumerate(entries)])


def _trusted_key(path: Path, index: int, entry: object) -> TrustedKey:
    where = f"{path}: key[{index}]"
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where}: must be a table")
    unknown = set(entry) - {"name", "public_key_file", "public_key_pem", "not_before", "not_after"}
    if unknown:
        raise KeyFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise KeyFileError(f"{where}.name: expected a non-empty string")
    if "public_key_file" in entry:
        verify_key = load_verify_key(path.parent / str(entry["public_key_file"]))
    elif isinstance(entry.get("public_key_pem"), str):
        verify_key = parse_verify_key(entry["public_key_pem"].encode("ascii"), f"{where}.public_key_pem")
    else:
        raise KeyFileError(f"{where}: needs public_key_file or public_key_pem")
    return TrustedKey(
        name,
        verify_key,
        _epoch(entry.get("not_before"), f"{where}.not_before"),
        _epoch(entry.get("not_after"), f"{where}.not_after"),
    )


def _epoch(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise KeyFileError(f"{where}: expected a TOML datetime with an offset, e.g. 2026-01-01T00:00:00+08:00")
    return int(value.timestamp())
