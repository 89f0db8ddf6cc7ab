"""What a gate decided about one scan, and why.

A closed set of reasons, as pretix's CheckResult has: every refusal the
visitor can meet is one of these, the message catalogue has a text for each,
and the hub counts them. A Decision carries facts only; what to do with the
turnstile and what to show is the caller's business.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.claims import TicketClaims


class Reason(str, enum.Enum):
    """Why a scan was granted or denied; values are the wire and log codes."""

    VALID = "valid"
    EXIT = "exit"
    EMERGENCY_OPEN = "emergency_open"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_VALID = "key_not_valid"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_SITE = "wrong_site"
    WRONG_ZONE = "wrong_zone"
    OUTSIDE_SLOT = "outside_slot"
    REVOKED = "revoked"
    ALREADY_USED = "already_used"
    ENTRIES_EXHAUSTED = "entries_exhausted"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OFFLINE_REFUSED = "offline_refused"
    CLOCK_UNTRUSTED = "clock_untrusted"
    HOLDER_CHECK_REQUIRED = "holder_check_required"
    HOLDER_MISMATCH = "holder_mismatch"
    STORAGE_ERROR = "storage_error"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class Decision:
    """Grant or deny one scan. ``persons`` is how many may pass on a grant."""

    granted: bool
    reason: Reason
    detail: str = ""
    ticket: TicketClaims | None = None
    persons: int = 0
    flagged: bool = False

    @classmethod
    def deny(cls, reason: Reason, detail: str, ticket: TicketClaims | None = None) -> "Decision":
        return cls(False, reason, detail, ticket)

    @classmethod
    def grant(cls, ticket: TicketClaims, detail: str = "", reason: Reason = Reason.VALID, flagged: bool = False) -> "Decision":
        return cls(True, reason, detail, ticket, ticket.persons, flagged)
