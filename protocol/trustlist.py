"""Signed trust lists: which issuer keys every gate of a site trusts, signed by the site root key.

A trust list replaces a gate's issuer trust store (``protocol.trust``) as a
whole. It is a COSE_Sign1 (``protocol.cose``, EdDSA, the root key's kid in
the protected header) over the CBOR map::

    {"typ": "lungta-trust-list", "site": SITE, "version": N, "issued_at": UNIX_S,
     "keys": [{"name": TEXT, "kid": h'8 bytes', "key": h'32 bytes',
               "not_before": UNIX_S, "not_after": UNIX_S}, ...]}

(``not_before`` / ``not_after`` optional). The site root key is kept offline
by the site admin, like a CA key; gates and the hub pin its public key, so
neither the hub nor the broker can add a key: they only carry the list. The
``version`` only grows: a reader refuses a list not newer than the one it has
(``check_newer``), so an old list that still trusted a withdrawn key cannot
be replayed. ``site`` binds the list to one site, ``typ`` to this purpose (a
root signature over any other payload is not a trust list). Every byte is
read by the strict decoder (``protocol.cbor``); the wire format is specified
in docs/hub-protocol.md, "Trust lists".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from .cbor import encode
from .cose import decode_sign1, sign1
from .errors import BadSignature, TicketError
from .keys import KID_LENGTH, kid_for
from .messages import MAX_TEXT, MAX_TIME_MS, MalformedMessage, MessageError, decode_payload, read_bytes, read_int, read_list, read_map, read_opt_int, read_text
from .topics import TopicError, check_name
from .trust import TrustedKey, TrustStore

TYP = "lungta-trust-list"
MAX_TRUST_LIST_BYTES = 64 * 1024
MAX_KEYS = 256
MAX_VERSION = 2**53
FILE_SUFFIX = ".cose"
_FIELDS = {"typ", "site", "version", "issued_at", "keys"}
_KEY_FIELDS = {"name", "kid", "key", "not_before", "not_after"}


class TrustListError(MessageError):
    """A trust list that must not be installed; ``reason`` is a stable code for logs and counters."""

    reason = "malformed"


class MalformedTrustList(TrustListError, MalformedMessage):
    """Not a COSE_Sign1 trust list of the expected shape, or a field missing, mistyped or out of bounds."""


class ForgedTrustList(TrustListError):
    """Not signed by the pinned site root key (another kid, or a signature that does not verify)."""

    reason = "bad_signature"


class WrongSiteTrustList(TrustListError):
    """A genuine list of another site."""

    reason = "wrong_site"


class StaleTrustList(TrustListError):
    """A genuine list whose version is not newer than the installed one (a replay or a rollback)."""

    reason = "stale"


@dataclass(frozen=True)
class TrustList:
    """A verified list: the site, its version, when the root signed it (Unix s), and the issuer keys."""

    site: str
    version: int
    issued_at: int
    keys: tuple[TrustedKey, ...]

    def trust_store(self) -> TrustStore:
        """The gate's issuer trust store this list stands for (immutable; swapped in whole)."""
        return TrustStore(list(self.keys))


def new_trust_list(site: str, version: int, issued_at: int, keys: Iterable[TrustedKey]) -> TrustList:
    """A list to sign, checked as a reader would check it (unique names and kids, bounds)."""
    try:
        check_name(site, "site")
        trust_list = TrustList(site, read_int(version, "version", 1, MAX_VERSION), read_int(issued_at, "issued_at", 0, MAX_TIME_MS), tuple(keys))
    except (TopicError, MalformedMessage) as error:
        raise MalformedTrustList(str(error)) from None
    _check_keys(trust_list.keys)
    return trust_list


def sign_trust_list(trust_list: TrustList, root: SigningKey) -> bytes:
    """The COSE_Sign1 bytes of ``trust_list`` signed by the site root key."""
    payload = {"typ": TYP, "site": trust_list.site, "version": trust_list.version, "issued_at": trust_list.issued_at, "keys": [_key_map(key) for key in trust_list.keys]}
    data = sign1(encode(payload), kid_for(root.verify_key), root)
    if len(data) > MAX_TRUST_LIST_BYTES:
        raise MalformedTrustList(f"trust list is {len(data)} bytes, at most {MAX_TRUST_LIST_BYTES} allowed")
    return data


def open_trust_list(data: bytes, root: VerifyKey, site: str | None = None) -> TrustList:
    """Verify ``data`` with the pinned root key and decode it; ``site``, when given, must match.

    Raises MalformedTrustList, ForgedTrustList or WrongSiteTrustList, never
    anything else, whatever the bytes.
    """
    if type(data) is not bytes or len(data) > MAX_TRUST_LIST_BYTES:
        raise MalformedTrustList(f"trust list must be at most {MAX_TRUST_LIST_BYTES} bytes")
    try:
        envelope = decode_sign1(data)
    except TicketError as error:
        raise MalformedTrustList(str(error)) from None
    root_kid = kid_for(root)
    if envelope.kid != root_kid:
        raise ForgedTrustList(f"signed by kid {envelope.kid.hex()}, not by the site root (kid {root_kid.hex()})")
    try:
        envelope.verify(root)
    except BadSignature:
        raise ForgedTrustList(f"signature does not verify with the site root (kid {root_kid.hex()})") from None
    trust_list = _decode(envelope.payload)
    if site is not None and trust_list.site != site:
        raise WrongSiteTrustList(f"trust list is for site {trust_list.site!r}, this is {site!r}")
    return trust_list


def check_newer(trust_list: TrustList, installed: int | None) -> None:
    """Raise StaleTrustList unless ``trust_list`` is newer than the ``installed`` version (None: none yet)."""
    if installed is not None and trust_list.version <= installed:
        raise StaleTrustList(f"version {trust_list.version} is not newer than the installed version {installed}")


def describe(trust_list: TrustList) -> dict:
    """The list as plain JSON-able values, for the command line and logs."""
    return {"site": trust_list.site, "version": trust_list.version, "issued_at": trust_list.issued_at,
            "keys": [{"name": key.name, "kid": key.kid.hex(), "not_before": key.not_before, "not_after": key.not_after} for key in trust_list.keys]}


def _key_map(key: TrustedKey) -> dict:
    out: dict = {"name": key.name, "kid": key.kid, "key": bytes(key.verify_key)}
    if key.not_before is not None:
        out["not_before"] = key.not_before
    if key.not_after is not None:
        out["not_after"] = key.not_after
    return out


def _decode(payload: bytes) -> TrustList:
    try:
        fields = read_map(decode_payload(payload, "trust list payload"), "trust list payload", _FIELDS)
        if fields.get("typ") != TYP:
            raise MalformedTrustList(f"typ must be {TYP!r}")
        site = fields.get("site")
        try:
            check_name(site, "site")
        except TopicError as error:
            raise MalformedTrustList(str(error)) from None
        keys = tuple(_decode_key(item, index) for index, item in enumerate(read_list(fields.get("keys"), "keys", MAX_KEYS)))
        trust_list = TrustList(site, read_int(fields.get("version"), "version", 1, MAX_VERSION), read_int(fields.get("issued_at"), "issued_at", 0, MAX_TIME_MS), keys)  # type: ignore[arg-type]
        _check_keys(keys)
        return trust_list
    except TrustListError:
        raise
    except MessageError as error:
        raise MalformedTrustList(str(error)) from None


def _decode_key(item: object, index: int) -> TrustedKey:
    fields = read_map(item, f"keys[{index}]", _KEY_FIELDS)
    raw = read_bytes(fields.get("key"), f"keys[{index}].key", 32, 32)
    try:
        verify_key = VerifyKey(raw)
    except (CryptoError, ValueError, TypeError):
        raise MalformedTrustList(f"keys[{index}].key is not an Ed25519 public key") from None
    if read_bytes(fields.get("kid"), f"keys[{index}].kid", KID_LENGTH, KID_LENGTH) != kid_for(verify_key):
        raise MalformedTrustList(f"keys[{index}].kid is not the kid of its key (SHA-256 of the key, first {KID_LENGTH} bytes)")
    return TrustedKey(
        read_text(fields.get("name"), f"keys[{index}].name"),
        verify_key,
        read_opt_int(fields.get("not_before"), f"keys[{index}].not_before", 0, MAX_TIME_MS),
        read_opt_int(fields.get("not_after"), f"keys[{index}].not_after", 0, MAX_TIME_MS),
    )


def _check_keys(keys: tuple[TrustedKey, ...]) -> None:
    if len(keys) > MAX_KEYS:
        raise MalformedTrustList(f"{len(keys)} keys, at most {MAX_KEYS}")
    names, kids = set(), set()
    for key in keys:
        if not 1 <= len(key.name) <= MAX_TEXT:
            raise MalformedTrustList(f"key name {key.name[:80]!r} must be 1..{MAX_TEXT} characters")
        if key.name in names or key.kid in kids:
            raise MalformedTrustList(f"key {key.name!r} (kid {key.kid.hex()}) is listed twice")
        if key.not_before is not None and key.not_after is not None and key.not_after <= key.not_before:
            raise MalformedTrustList(f"key {key.name!r}: not_after must be after not_before")
        names.add(key.name)
        kids.add(key.kid)
