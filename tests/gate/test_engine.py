"""The pure decision engine, over an in-memory state view: every reason a visitor can meet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from nacl.signing import SigningKey

from gate.decision import Reason
from gate.engine import decide
from gate.rules import ClockPolicy, Direction, GateRules, OfflinePolicy, Usage
from protocol.claims import TicketType, TimeSlot
from protocol.ticket import issue_ticket
from testkit.tickets import DAY, NOW, SITE, make_claims

TZ = ZoneInfo("Asia/Shanghai")
LOCAL_NOW = datetime.fromtimestamp(NOW, TZ)  # 2026-11-18 19:06 in China Standard Time


@dataclass
class MemoryState:
    revoked: set[bytes] = field(default_factory=set)
    usages: dict[tuple[bytes, str], Usage] = field(default_factory=dict)
    quota: int | None = None
    trusted: bool = True
    online: bool = True

    def is_revoked(self, ticket_id: bytes) -> bool:
        return ticket_id in self.revoked

    def usage(self, ticket_id: bytes, zone: str, day: date) -> Usage:
        return self.usages.get((ticket_id, zone), Usage())

    def quota_remaining(self, day: date, minute: int) -> int | None:
        return self.quota

    def clock_trusted(self) -> bool:
        return self.trusted

    def hub_online(self) -> bool:
        return self.online


RULES = GateRules(site=SITE, gate_id="east-1", timezone=TZ)


def at_local(hour: int, minute: int = 0) -> int:
    return int(LOCAL_NOW.replace(hour=hour, minute=minute, second=0).timestamp())


def test_valid_ticket_is_granted_for_its_persons(mint, trust):
    decision = decide(mint(persons=4, ticket_type=TicketType.GROUP), NOW, RULES, trust, MemoryState())
    assert decision.granted and decision.reason is Reason.VALID and decision.persons == 4


@pytest.mark.parametrize(
    "text, reason",
    [("LT1:%%%", Reason.MALFORMED), ("", Reason.MALFORMED), ("https://example.com/ticket", Reason.MALFORMED)],
)
def test_unreadable_codes_are_malformed(trust, text, reason):
    decision = decide(text, NOW, RULES, trust, MemoryState())
    assert not decision.granted and decision.reason is reason and decision.detail


def test_forged_ticket_is_refused_before_its_claims_are_read(trust):
    forged = issue_ticket(make_claims(), SigningKey.generate())
    decision = decide(forged, NOW, RULES, trust, MemoryState())
    assert decision.reason is Reason.UNKNOWN_KEY and decision.ticket is None


def test_not_yet_valid_and_expired(mint, trust):
    assert decide(mint(not_before=NOW + 60), NOW, RULES, trust, MemoryState()).reason is Reason.NOT_YET_VALID
    assert decide(mint(expires=NOW), NOW, RULES, trust, MemoryState()).reason is Reason.EXPIRED


def test_ticket_for_another_site_is_wrong_site(mint, trust):
    assert decide(mint(site="jiuzhaigou"), NOW, RULES, trust, MemoryState()).reason is Reason.WRONG_SITE


def test_inner_zone_gate_needs_the_zone_on_the_ticket(mint, trust):
    inner = GateRules(site=SITE, zone="red-palace", timezone=TZ)
    assert decide(mint(), NOW, inner, trust, MemoryState()).reason is Reason.WRONG_ZONE
    assert decide(mint(zones=("red-palace",)), NOW, inner, trust, MemoryState()).granted
    assert decide(mint(zones=("red-palace",)), NOW, RULES, trust, MemoryState()).granted  # main entrance takes any ticket of the site


def test_slot_is_enforced_with_grace_before_and_after(mint, trust):
    text = mint(slot=TimeSlot.parse("10:00-11:00"), not_before=NOW - DAY, expires=NOW + DAY)
    state = MemoryState()
    assert decide(text, at_local(9, 44), RULES, trust, state).reason is Reason.OUTSIDE_SLOT
    assert decide(text, at_local(9, 45), RULES, trust, state).granted
    assert decide(text, at_local(11, 29), RULES, trust, state).granted
    refused = decide(text, at_local(11, 30), RULES, trust, state)
    assert refused.reason is Reason.OUTSIDE_SLOT and "10:00-11:00" in refused.detail and "11:30" in refused.detail


def test_staff_pass_ignores_slot_and_quota(mint, trust):
    text = mint(ticket_type=TicketType.STAFF, entries=0, slot=TimeSlot.parse("08:00-09:00"))
    assert decide(text, NOW, RULES, trust, MemoryState(quota=0)).granted


def test_revoked_ticket_is_refused(mint, trust):
    text = mint()
    from protocol.ticket import read_ticket

    ticket_id = read_ticket(text).claims.ticket_id
    assert decide(text, NOW, RULES, trust, MemoryState(revoked={ticket_id})).reason is Reason.REVOKED


def _used(text: str, **usage: object) -> MemoryState:
    from protocol.ticket import read_ticket

    return MemoryState(usages={(read_ticket(text).claims.ticket_id, "main"): Usage(**usage)})


def test_single_entry_ticket_used_once_says_when_and_where(mint, trust):
    text = mint()
    decision = decide(text, NOW, RULES, trust, _used(text, entries=1, today=1, last_gate="west-2", last_at=NOW - 600))
    assert decision.reason is Reason.ALREADY_USED
    assert "west-2" in decision.detail and "18:56" in decision.detail


def test_multi_entry_ticket_counts_entries(mint, trust):
    text = mint(entries=3)
    assert decide(text, NOW, RULES, trust, _used(text, entries=2)).granted
    assert decide(text, NOW, RULES, trust, _used(text, entries=3)).reason is Reason.ENTRIES_EXHAUSTED


def test_multi_day_pass_limits_entries_per_day(mint, trust):
    text = mint(entries=0, entries_per_day=1, expires=NOW + 3 * DAY)
    assert decide(text, NOW, RULES, trust, _used(text, entries=2, today=0)).granted
    refused = decide(text, NOW, RULES, trust, _used(text, entries=3, today=1))
    assert refused.reason is Reason.ENTRIES_EXHAUSTED and "per day" in refused.detail


def test_reentry_ticket_is_rearmed_by_an_exit(mint, trust):
    text = mint(reentry=True)
    assert decide(text, NOW, RULES, trust, _used(text, entries=1, exits=0)).reason is Reason.ALREADY_USED
    assert decide(text, NOW, RULES, trust, _used(text, entries=1, exits=1)).granted


def test_exit_scan_is_granted_without_consuming_an_entry(mint, trust):
    text = mint()
    decision = decide(text, NOW, RULES, trust, _used(text, entries=1), Direction.EXIT)
    assert decision.granted and decision.reason is Reason.EXIT


def test_quota_lease_caps_admissions_by_persons(mint, trust):
    assert decide(mint(persons=3), NOW, RULES, trust, MemoryState(quota=3)).granted
    refused = decide(mint(persons=3), NOW, RULES, trust, MemoryState(quota=2))
    assert refused.reason is Reason.QUOTA_EXHAUSTED and "2 place(s) left" in refused.detail
    assert decide(mint(), NOW, RULES, trust, MemoryState(quota=None)).granted


def test_untrusted_clock_denies_or_admits_flagged_by_policy(mint, trust):
    text = mint()
    assert decide(text, NOW, RULES, trust, MemoryState(trusted=False)).reason is Reason.CLOCK_UNTRUSTED
    lenient = GateRules(site=SITE, timezone=TZ, clock_policy=ClockPolicy.ADMIT_FLAGGED)
    decision = decide(text, NOW, lenient, trust, MemoryState(trusted=False))
    assert decision.granted and decision.flagged


def test_offline_policy_for_single_entry_tickets(mint, trust):
    strict = GateRules(site=SITE, timezone=TZ, offline_policy=OfflinePolicy.DENY)
    assert decide(mint(), NOW, strict, trust, MemoryState(online=False)).reason is Reason.OFFLINE_REFUSED
    assert decide(mint(entries=2), NOW, strict, trust, MemoryState(online=False)).granted
    lenient = decide(mint(), NOW, RULES, trust, MemoryState(online=False))
    assert lenient.granted and lenient.flagged
