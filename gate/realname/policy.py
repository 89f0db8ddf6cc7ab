"""Which real-name tickets need an ID check at this gate, and what a presented ID proves.

Pure: the engine reads ``RealNamePolicy`` from GateRules and compares a ``PresentedHolder``
with the ticket; the slow part (``present_holder``, one Argon2id per ID check) runs in the
caller's thread before the validator's lock is taken. A PresentedHolder carries only
digests bound to one ticket id, never the ID number.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass

from protocol.claims import TicketClaims, TicketType, holder_id_hash
from protocol.holder import BINDING_VERSIONS, HolderBinding, bind_holder, normalise_holder_id, same_binding


class HolderCheck(str, enum.Enum):
    """Which real-name tickets this gate checks against an ID."""

    OFF = "off"  # none: staff check IDs by eye, or the site has no real-name duty
    REQUIRED = "required"  # every ticket that names a holder
    TYPES = "types"  # only the ticket types listed in ``RealNamePolicy.types``


class LegacyPolicy(str, enum.Enum):
    """What a gate checking IDs does with an old-format ticket (plain SHA-256 ``holder_hash``)."""

    CHECK = "check"  # check the ID against the old hash: the ticket is as leaky as it was printed, no more
    DENY = "deny"  # refuse it: the visitor has it reissued with a new binding
    ADMIT = "admit"  # let it pass without an ID check


class HolderRequirement(enum.Enum):
    NONE = "none"
    ID_CHECK = "id_check"
    REFUSED = "refused"


@dataclass(frozen=True)
class RealNamePolicy:
    """``realname.check``, ``realname.types`` and ``realname.legacy`` in gate.toml."""

    check: HolderCheck = HolderCheck.OFF
    types: frozenset[TicketType] = frozenset()
    legacy: LegacyPolicy = LegacyPolicy.CHECK

    def requirement(self, claims: TicketClaims) -> HolderRequirement:
        """What admitting this ticket takes, by the policy alone (no ID involved)."""
        named = claims.holder_binding is not None or claims.holder_hash is not None
        if not named or self.check is HolderCheck.OFF:
            return HolderRequirement.NONE
        if self.check is HolderCheck.TYPES and claims.ticket_type not in self.types:
            return HolderRequirement.NONE
        if claims.holder_binding is None:
            return {LegacyPolicy.CHECK: HolderRequirement.ID_CHECK, LegacyPolicy.DENY: HolderRequirement.REFUSED,
                    LegacyPolicy.ADMIT: HolderRequirement.NONE}[self.legacy]
        return HolderRequirement.ID_CHECK


@dataclass(frozen=True)
class PresentedHolder:
    """An ID presented for one ticket, as the digests the ticket can be compared with."""

    ticket_id: bytes
    binding: HolderBinding | None = None
    legacy_hash: bytes | None = None


def present_holder(claims: TicketClaims, holder_id: str, site_secret: bytes, retired_secrets: tuple[bytes, ...] = ()) -> PresentedHolder:
    """Compute what ``claims`` needs to be compared with ``holder_id``. Slow for a binding
    (one Argon2id per secret tried); raises HolderIdError if the text is not an ID number,
    ValueError if the ticket's binding version is unknown to this gate.

    ``retired_secrets`` are the site's earlier secrets (after a rotation, for tickets minted
    before it): tried in turn only when the current secret does not give the ticket's
    binding, so the holder of a new ticket pays one Argon2id and an impostor one per secret."""
    normalised = normalise_holder_id(holder_id)
    expected = claims.holder_binding
    if expected is None:
        return PresentedHolder(claims.ticket_id, legacy_hash=holder_id_hash(claims.ticket_id, normalised))
    binding = bind_holder(claims.ticket_id, normalised, site_secret, expected.version)
    for secret in retired_secrets:
        if same_binding(expected, binding):
            break
        binding = bind_holder(claims.ticket_id, normalised, secret, expected.version)
    return PresentedHolder(claims.ticket_id, binding=binding)


def unknown_binding_version(claims: TicketClaims) -> str | None:
    """Why this gate cannot check the ticket's binding (a version newer than its software), or None.

    Policy (docs/realname.md): such a ticket is refused as ``holder_check_required`` at once,
    without asking for a card, and staff check the ID by hand; it stays unused."""
    binding = claims.holder_binding
    if binding is None or binding.version in BINDING_VERSIONS:
        return None
    known = ", ".join(f"v{version}" for version in BINDING_VERSIONS)
    return f"holder binding v{binding.version} is newer than this gate's software (it checks {known})"


def holder_matches(claims: TicketClaims, presented: PresentedHolder) -> bool:
    """Does the presented ID belong to this ticket? Constant-time in the digests."""
    if presented.ticket_id != claims.ticket_id:
        return False
    if claims.holder_binding is not None:
        return presented.binding is not None and same_binding(claims.holder_binding, presented.binding)
    if claims.holder_hash is not None and presented.legacy_hash is not None:
        return hmac.compare_digest(claims.holder_hash, presented.legacy_hash)
    return False
