"""The real-name binding: a ticket names its holder without carrying anything an ID number
can be recovered from.

A ticket carries ``Argon2id(normalised ID, salt)`` where the salt is keyed by a per-site
secret and the ticket id (cti). The secret means a photo of a ticket alone gives nothing to
search with; the slowness (tens of milliseconds per try, 16 MiB of memory) means that even
with the secret leaked, searching the ~1.3e11 plausible resident ID numbers costs over a
century of one CPU core per ticket (arithmetic and its limits: docs/security.md,
"Real-name binding"). The cti in the salt makes every ticket its own search, and two
tickets of one person unlinkable.

The parameters are fixed per binding *version*, which the ticket carries, so gates know how
to check a ticket minted years ago and a site can raise the cost later by minting a new
version. A gate computes the binding once per ID check, outside any lock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw

from .files import UnreadableFile, read_regular_file

SITE_SECRET_BYTES = 32
MAX_SITE_SECRET_FILE = 4096  # 64 hex digits and a newline; anything far larger is not a secret file
DIGEST_BYTES = 16
MAX_ID_LENGTH = 32
SALT_CONTEXT = b"lungta/holder-binding/v"
# GB 11643: the 18th character of a resident ID number is an ISO 7064 MOD 11-2 check character.
_RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_CHECK = "10X98765432"
_SEPARATORS = re.compile(r"[\s\-_/.]+")


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: ``memory_kib`` KiB, ``iterations`` passes, ``lanes`` of parallelism."""

    memory_kib: int
    iterations: int
    lanes: int = 1


# Never change a published version's parameters: tickets already printed carry the number.
# v1: about 27 ms of one core of the reference machine, about 80 ms on a Raspberry Pi 4 (bench/bench_realname.py).
BINDING_VERSIONS: dict[int, KdfParams] = {1: KdfParams(memory_kib=16 * 1024, iterations=2)}
CURRENT_VERSION = 1


@dataclass(frozen=True)
class HolderBinding:
    """What a real-name ticket carries: the binding version and the Argon2id digest."""

    version: int
    digest: bytes


class HolderIdError(ValueError):
    """Text that is not an ID number: the message says what is wrong, never the number."""


class SiteSecretError(Exception):
    """The site secret file is missing, unreadable or not 32 bytes of hex; names the file."""


def normalise_holder_id(text: str) -> str:
    """The canonical form the binding is computed over: NFKC (full-width digits typed on a
    Chinese input method become ASCII), separators and white space removed, upper case.

    Accepts resident ID numbers (18 characters, check character verified, so a typo is
    "re-enter", not "does not match"), passports and HK/Macau/Taiwan permits (4..32
    letters and digits). Raises HolderIdError.
    """
    value = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()
    if not 4 <= len(value) <= MAX_ID_LENGTH or not value.isascii() or not value.isalnum():
        raise HolderIdError(f"not an ID number: {len(value)} characters, expected 4..{MAX_ID_LENGTH} letters and digits")
    if len(value) == 18 and value[:17].isdigit() and not _resident_check_ok(value):
        raise HolderIdError("resident ID number check character is wrong (a digit was mistyped?)")
    return value


def _resident_check_ok(number: str) -> bool:
    return resident_check_character(number[:17]) == number[17]


def resident_check_character(first17: str) -> str:
    """The check character completing 17 digits into a valid resident ID number (tests, benchmarks)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _RESIDENT_WEIGHTS))
    return _RESIDENT_CHECK[total % 11]


def bind_holder(ticket_id: bytes, holder_id: str, site_secret: bytes, version: int = CURRENT_VERSION) -> HolderBinding:
    """The binding of ``holder_id`` to the ticket ``ticket_id``. Deliberately slow (see module doc).

    Raises HolderIdError for text that is not an ID number, ValueError for an unknown version.
    """
    params = binding_params(version)
    salt = hmac.new(site_secret, SALT_CONTEXT + bytes([version]) + ticket_id, hashlib.sha256).digest()
    digest = hash_secret_raw(normalise_holder_id(holder_id).encode("ascii"), salt, time_cost=params.iterations,
                             memory_cost=params.memory_kib, parallelism=params.lanes, hash_len=DIGEST_BYTES, type=Type.ID)
    return HolderBinding(version, digest)


def binding_params(version: int) -> KdfParams:
    try:
        return BINDING_VERSIONS[version]
    except KeyError:
        known = ", ".join(str(v) for v in BINDING_VERSIONS)
        raise ValueError(f"holder binding version {version} is not known here (known: {known})") from None


def same_binding(expected: HolderBinding, presented: HolderBinding) -> bool:
    """Constant-time comparison: a gate must not leak how many bytes matched."""
    return expected.version == presented.version and hmac.compare_digest(expected.digest, presented.digest)


def generate_site_secret() -> bytes:
    return os.urandom(SITE_SECRET_BYTES)


def write_site_secret(path: Path, secret: bytes) -> None:
    """Write the secret as one line of hex, readable by its owner only (mode 0600), never overwriting."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")


def read_site_secret(path: Path) -> bytes:
    """The site secret from ``path``; SiteSecretError names the file and the fault."""
    try:
        data = read_regular_file(path, MAX_SITE_SECRET_FILE)  # never /dev/zero or a FIFO: bounded, never blocking
    except UnreadableFile as error:
        raise SiteSecretError(f"{path}: cannot read the site secret: {error.reason.removeprefix('cannot read: ')}") from None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SiteSecretError(f"{path}: the site secret is not hex text") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise SiteSecretError(f"{path}: the site secret is not hex text") from None
    if len(secret) != SITE_SECRET_BYTES:
        raise SiteSecretError(f"{path}: the site secret is {len(secret)} bytes, expected {SITE_SECRET_BYTES}")
    return secret
