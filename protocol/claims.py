"""The CWT claims set a Lungta ticket carries, and its strict CBOR mapping.

Standard CWT claims (RFC 8392) keep their registered keys; what a scenic-area
ticket needs beyond them sits in one private-use claim (-65537) holding a map
with small integer keys, the pattern the EU DCC uses for its payload. The
mapping is total: any missing, mistyped or out-of-range claim is BadClaims,
and unknown keys inside the Lungta map are refused, because a claim this
reader does not understand may be a restriction it would otherwise ignore.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import BadClaims
from .holder import HolderBinding

CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CTI = 1, 4, 5, 6, 7
CLAIM_LUNGTA = -65537

K_SITE, K_ZONES, K_TYPE, K_PERSONS, K_ENTRIES, K_PER_DAY, K_SLOT, K_HOLDER_HASH, K_HOLDER_NAME, K_REENTRY, K_HOLDER_BINDING = range(1, 12)

MAIN_ZONE = "main"  # the zone of a gate with no zone: the main entrance, which admits any ticket of the site
MAX_TIME = 2**37  # Unix seconds, year 6325: past any ticket, and a datetime in any zone can still show it
MAX_LABEL = 64
MAX_ZONES = 32
MAX_PERSONS = 999
MAX_ENTRIES = 65535
MINUTES_PER_DAY = 24 * 60


class TicketType(enum.IntEnum):
    """Ticket types by their wire code; the code is what the QR carries."""

    ADULT = 0
    CHILD = 1
    SENIOR = 2
    STUDENT = 3
    RELIGIOUS = 4
    STAFF = 5
    DISABLED = 6
    GROUP = 7

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> "TicketType":
        try:
            return cls[label.upper()]
        except KeyError:
            choices = ", ".join(t.label for t in cls)
            raise ValueError(f"unknown ticket type {label!r} (expected one of: {choices})") from None


@dataclass(frozen=True)
class TimeSlot:
    """An entry window within a day, in minutes after local midnight at the site."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= MINUTES_PER_DAY:
            raise ValueError(f"slot {self.start}-{self.end} must satisfy 0 <= start < end <= 1440 minutes")

    @classmethod
    def parse(cls, text: str) -> "TimeSlot":
        """``HH:MM-HH:MM`` in the site's local time; ``24:00`` ends a slot at midnight.

        The one parser of slots: ticket issuing and the hub's quotas both use it.
        """
        match = re.fullmatch(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})", text)
        if not match:
            raise ValueError(f"slot {text!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if m1 > 59 or m2 > 59:
            raise ValueError(f"slot {text!r} has minutes above 59")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start >= MINUTES_PER_DAY or end > MINUTES_PER_DAY:
            raise ValueError(f"slot {text!r}: times run from 00:00 to 24:00")
        if end <= start:
            raise ValueError(f"slot {text!r} must end after it starts")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True)
class TicketClaims:
    """What a ticket says. Times are Unix seconds; ``entries == 0`` means unlimited."""

    ticket_id: bytes
    site: str
    not_before: int
    expires: int
    issued_at: int | None = None
    issuer: str | None = None
    zones: tuple[str, ...] = ()
    ticket_type: TicketType = TicketType.ADULT
    persons: int = 1
    entries: int = 1
    entries_per_day: int | None = None
    slot: TimeSlot | None = None
    holder_hash: bytes | None = None
    holder_name: str | None = None
    reentry: bool = False
    holder_binding: HolderBinding | None = None  # real-name binding (protocol/holder.py); holder_hash is the old format
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def ticket_id_hex(self) -> str:
        return self.ticket_id.hex()


def holder_id_hash(ticket_id: bytes, holder_id: str) -> bytes:
    """The OLD real-name format: SHA-256(cti || holder id, upper-cased, spaces removed)[:16].

    Searchable in hours (the cti is in the same QR), so nothing mints it any more; gates
    still check tickets already printed with it as ``realname.legacy`` says
    (docs/realname.md). New tickets carry ``holder_binding`` (protocol/holder.py).
    """
    normalized = "".join(holder_id.split()).upper().encode("utf-8")
    return hashlib.sha256(ticket_id + normalized).digest()[:16]


def claims_to_cbor(claims: TicketClaims) -> dict:
    """The CWT claims map, defaults omitted to keep the QR small."""
    lungta: dict[int, object] = {K_SITE: claims.site}
    if claims.zones:
        lungta[K_ZONES] = list(claims.zones)
    if claims.ticket_type != TicketType.ADULT:
        lungta[K_TYPE] = int(claims.ticket_type)
    if claims.persons != 1:
        lungta[K_PERSONS] = claims.persons
    if claims.entries != 1:
        lungta[K_ENTRIES] = claims.entries
    if claims.entries_per_day is not None:
        lungta[K_PER_DAY] = claims.entries_per_day
    if claims.slot is not None:
        lungta[K_SLOT] = [claims.slot.start, claims.slot.end]
    if claims.holder_hash is not None:
        lungta[K_HOLDER_HASH] = claims.holder_hash
    if claims.holder_name is not None:
        lungta[K_HOLDER_NAME] = claims.holder_name
    if claims.reentry:
        lungta[K_REENTRY] = True
    if claims.holder_binding is not None:
        lungta[K_HOLDER_BINDING] = [claims.holder_binding.version, claims.holder_binding.digest]
    cwt: dict[int, object] = {}
    if claims.issuer is not None:
        cwt[CLAIM_ISS] = claims.issuer
    cwt[CLAIM_EXP] = claims.expires
    cwt[CLAIM_NBF] = claims.not_before
    if claims.issued_at is not None:
        cwt[CLAIM_IAT] = claims.issued_at
    cwt[CLAIM_CTI] = claims.ticket_id
    cwt[CLAIM_LUNGTA] = lungta
    return cwt


def claims_from_cbor(cwt: object) -> TicketClaims:
    """Read a decoded CWT claims map; anything off is BadClaims naming the claim."""
    if not isinstance(cwt, dict):
        raise BadClaims(f"claims set is a {type(cwt).__name__}, expected a map")
    lungta = cwt.get(CLAIM_LUNGTA)
    if not isinstance(lungta, dict):
        raise BadClaims("claim -65537 (Lungta ticket) is missing or not a map")
    unknown = [k for k in lungta if not (type(k) is int and K_SITE <= k <= K_HOLDER_BINDING)]
    if unknown:
        raise BadClaims(f"unknown Lungta claim key(s) {unknown[:5]!r}")
    not_before = _time(cwt, CLAIM_NBF, "nbf")
    expires = _time(cwt, CLAIM_EXP, "exp")
    if expires <= not_before:
        raise BadClaims("exp is not after nbf")
    extra = {k: v for k, v in cwt.items() if k not in (CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_CTI, CLAIM_LUNGTA)}
    return TicketClaims(
        ticket_id=_bytes(cwt.get(CLAIM_CTI), "cti", 12, 32),
        site=_label(lungta.get(K_SITE), "site"),
        not_before=not_before,
        expires=expires,
        issued_at=_time(cwt, CLAIM_IAT, "iat") if CLAIM_IAT in cwt else None,
        issuer=_label(cwt[CLAIM_ISS], "iss") if CLAIM_ISS in cwt else None,
        zones=_zones(lungta.get(K_ZONES, [])),
        ticket_type=_ticket_type(lungta.get(K_TYPE, 0)),
        persons=_int(lungta.get(K_PERSONS, 1), "persons", 1, MAX_PERSONS),
        entries=_int(lungta.get(K_ENTRIES, 1), "entries", 0, MAX_ENTRIES),
        entries_per_day=_int(lungta[K_PER_DAY], "entries_per_day", 1, MAX_ENTRIES) if K_PER_DAY in lungta else None,
        slot=_slot(lungta[K_SLOT]) if K_SLOT in lungta else None,
        holder_hash=_bytes(lungta[K_HOLDER_HASH], "holder_hash", 16, 32) if K_HOLDER_HASH in lungta else None,
        holder_name=_label(lungta[K_HOLDER_NAME], "holder_name") if K_HOLDER_NAME in lungta else None,
        reentry=_bool(lungta.get(K_REENTRY, False), "reentry"),
        holder_binding=_holder_binding(lungta[K_HOLDER_BINDING]) if K_HOLDER_BINDING in lungta else None,
        extra=extra,
    )


def _int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise BadClaims(f"{name} is a {type(value).__name__}, expected an integer")
    if not low <= value <= high:
        raise BadClaims(f"{name} {value} is outside {low}..{high}")
    return value


def _time(cwt: dict, key: int, name: str) -> int:
    if key not in cwt:
        raise BadClaims(f"{name} is missing")
    return _int(cwt[key], name, 0, MAX_TIME)


def _bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise BadClaims(f"{name} is a {type(value).__name__}, expected a boolean")
    return value


def _bytes(value: object, name: str, low: int, high: int) -> bytes:
    if type(value) is not bytes:
        raise BadClaims(f"{name} is missing or a {type(value).__name__}, expected a byte string")
    if not low <= len(value) <= high:
        raise BadClaims(f"{name} is {len(value)} bytes, expected {low}..{high}")
    return value


def _label(value: object, name: str) -> str:
    if type(value) is not str:
        raise BadClaims(f"{name} is missing or a {type(value).__name__}, expected a text string")
    if not 1 <= len(value) <= MAX_LABEL:
        raise BadClaims(f"{name} is {len(value)} characters, expected 1..{MAX_LABEL}")
    return value


def _zones(value: object) -> tuple[str, ...]:
    if type(value) is not list or len(value) > MAX_ZONES:
        raise BadClaims(f"zones must be an array of at most {MAX_ZONES} text strings")
    return tuple(_label(zone, "zone") for zone in value)


_TICKET_TYPES = tuple(TicketType)  # by code: a tuple index is cheaper than the enum's lookup


def _ticket_type(value: object) -> TicketType:
    code = _int(value, "type", 0, 255)
    if code >= len(_TICKET_TYPES):
        raise BadClaims(f"ticket type code {code} is not defined")
    return _TICKET_TYPES[code]


def _slot(value: object) -> TimeSlot:
    if type(value) is not list or len(value) != 2:
        raise BadClaims("slot must be an array [start_minute, end_minute]")
    start, end = _int(value[0], "slot minute", 0, MINUTES_PER_DAY), _int(value[1], "slot minute", 0, MINUTES_PER_DAY)
    if start >= end:
        raise BadClaims(f"slot start {start} is not before its end {end}")
    return TimeSlot(start, end)


def _holder_binding(value: object) -> HolderBinding:
    if type(value) is not list or len(value) != 2:
        raise BadClaims("holder_binding must be an array [version, digest]")
    return HolderBinding(_int(value[0], "holder_binding version", 1, 255), _bytes(value[1], "holder_binding digest", 16, 32))


def describe_claims(claims: TicketClaims) -> dict[str, object]:
    """The claims as JSON-ready values, the shape every CLI and event uses."""
    def iso(ts: int | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")

    return {
        "ticket_id": claims.ticket_id_hex,
        "issuer": claims.issuer,
        "site": claims.site,
        "zones": list(claims.zones),
        "type": claims.ticket_type.label,
        "persons": claims.persons,
        "entries": claims.entries,
        "entries_per_day": claims.entries_per_day,
        "slot": str(claims.slot) if claims.slot else None,
        "valid_from": iso(claims.not_before),
        "valid_until": iso(claims.expires),
        "issued_at": iso(claims.issued_at),
        "holder_name": claims.holder_name,
        "holder_hash": claims.holder_hash.hex() if claims.holder_hash else None,
        "holder_binding": f"v{claims.holder_binding.version}:{claims.holder_binding.digest.hex()}" if claims.holder_binding else None,
        "reentry": claims.reentry,
    }
