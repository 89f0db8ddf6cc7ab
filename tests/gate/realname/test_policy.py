"""The ID check in the pure engine: which tickets ask for an ID, and what an ID proves."""

from __future__ import annotations

import dataclasses

import pytest

from gate.decision import Reason
from gate.engine import decide
from gate.realname.policy import HolderCheck, LegacyPolicy, PresentedHolder, RealNamePolicy, present_holder
from gate.rules import Direction, GateRules
from protocol.claims import TicketType, holder_id_hash
from protocol.holder import bind_holder, resident_check_character
from protocol.ticket import issue_ticket
from testkit.tickets import NOW, SITE, make_claims
from tests.gate.test_engine import MemoryState

HOLDER = "54010219900101123" + resident_check_character("54010219900101123")
OTHER = "11010519491231002" + resident_check_character("11010519491231002")
SECRET = bytes(range(32))
CHECKING = GateRules(site=SITE, gate_id="east-1", realname=RealNamePolicy(HolderCheck.REQUIRED))


def _real_name(issuer_key, **overrides):
    claims = make_claims(**overrides)
    claims = dataclasses.replace(claims, holder_binding=bind_holder(claims.ticket_id, HOLDER, SECRET))
    return claims, issue_ticket(claims, issuer_key)


def _legacy(issuer_key):
    claims = make_claims()
    claims = dataclasses.replace(claims, holder_hash=holder_id_hash(claims.ticket_id, HOLDER))
    return claims, issue_ticket(claims, issuer_key)


def test_real_name_ticket_asks_for_an_id_then_admits_its_holder(issuer_key, trust):
    claims, text = _real_name(issuer_key)
    first = decide(text, NOW, CHECKING, trust, MemoryState())
    assert not first.granted and first.reason is Reason.HOLDER_CHECK_REQUIRED and first.ticket == claims
    decision = decide(text, NOW, CHECKING, trust, MemoryState(), holder=present_holder(claims, HOLDER, SECRET))
    assert decision.granted and decision.reason is Reason.VALID


def test_someone_elses_id_is_refused_as_a_mismatch(issuer_key, trust):
    claims, text = _real_name(issuer_key)
    decision = decide(text, NOW, CHECKING, trust, MemoryState(), holder=present_holder(claims, OTHER, SECRET))
    assert not decision.granted and decision.reason is Reason.HOLDER_MISMATCH


def test_an_id_checked_for_one_ticket_does_not_admit_another(issuer_key, trust):
    claims, _ = _real_name(issuer_key)
    _, other_text = _real_name(issuer_key)
    decision = decide(other_text, NOW, CHECKING, trust, MemoryState(), holder=present_holder(claims, HOLDER, SECRET))
    assert decision.reason is Reason.HOLDER_CHECK_REQUIRED


def test_a_gate_with_the_wrong_site_secret_refuses_the_holder(issuer_key, trust):
    claims, text = _real_name(issuer_key)
    decision = decide(text, NOW, CHECKING, trust, MemoryState(), holder=present_holder(claims, HOLDER, bytes(32)))
    assert decision.reason is Reason.HOLDER_MISMATCH


def test_no_id_is_asked_before_the_ticket_is_otherwise_admissible(issuer_key, trust):
    _, text = _real_name(issuer_key, expires=NOW - 1, not_before=NOW - 100)
    assert decide(text, NOW, CHECKING, trust, MemoryState()).reason is Reason.EXPIRED
    _, text = _real_name(issuer_key, persons=3)
    assert decide(text, NOW, CHECKING, trust, MemoryState(quota=2)).reason is Reason.QUOTA_EXHAUSTED


def test_exits_and_tickets_without_a_holder_need_no_id(issuer_key, trust, mint):
    _, text = _real_name(issuer_key, reentry=True)
    assert decide(text, NOW, CHECKING, trust, MemoryState(), Direction.EXIT).granted
    assert decide(mint(), NOW, CHECKING, trust, MemoryState()).granted


def test_checking_off_or_for_other_types_admits_real_name_tickets_unchecked(issuer_key, trust):
    _, text = _real_name(issuer_key, ticket_type=TicketType.ADULT)
    assert decide(text, NOW, GateRules(site=SITE), trust, MemoryState()).granted
    by_type = GateRules(site=SITE, realname=RealNamePolicy(HolderCheck.TYPES, frozenset({TicketType.GROUP})))
    assert decide(text, NOW, by_type, trust, MemoryState()).granted
    _, group = _real_name(issuer_key, ticket_type=TicketType.GROUP, persons=2)
    assert decide(group, NOW, by_type, trust, MemoryState()).reason is Reason.HOLDER_CHECK_REQUIRED


@pytest.mark.parametrize("policy, with_holder, without_id", [
    (LegacyPolicy.CHECK, Reason.VALID, Reason.HOLDER_CHECK_REQUIRED),
    (LegacyPolicy.DENY, Reason.HOLDER_MISMATCH, Reason.HOLDER_MISMATCH),
    (LegacyPolicy.ADMIT, Reason.VALID, Reason.VALID),
])
def test_old_format_tickets_follow_the_legacy_policy(issuer_key, trust, policy, with_holder, without_id):
    claims, text = _legacy(issuer_key)
    rules = GateRules(site=SITE, realname=RealNamePolicy(HolderCheck.REQUIRED, legacy=policy))
    assert decide(text, NOW, rules, trust, MemoryState()).reason is without_id
    assert decide(text, NOW, rules, trust, MemoryState(), holder=present_holder(claims, HOLDER, SECRET)).reason is with_holder
    if policy is LegacyPolicy.CHECK:
        assert decide(text, NOW, rules, trust, MemoryState(), holder=present_holder(claims, OTHER, SECRET)).reason is Reason.HOLDER_MISMATCH


def test_a_presented_holder_carries_no_id_number(issuer_key):
    claims, _ = _real_name(issuer_key)
    presented = present_holder(claims, HOLDER, SECRET)
    assert isinstance(presented, PresentedHolder) and HOLDER not in repr(presented) and HOLDER.encode() not in repr(presented).encode()


def test_after_a_secret_rotation_tickets_of_both_secrets_admit_their_holders_only(issuer_key, trust):
    new_secret = bytes(range(100, 132))
    old_claims, old_text = _real_name(issuer_key)  # minted with SECRET, before the rotation
    new_claims = make_claims()
    new_claims = dataclasses.replace(new_claims, holder_binding=bind_holder(new_claims.ticket_id, HOLDER, new_secret))
    new_text = issue_ticket(new_claims, issuer_key)
    for claims, text in ((old_claims, old_text), (new_claims, new_text)):
        holder = present_holder(claims, HOLDER, new_secret, retired_secrets=(SECRET,))
        assert decide(text, NOW, CHECKING, trust, MemoryState(), holder=holder).granted
        other = present_holder(claims, OTHER, new_secret, retired_secrets=(SECRET,))
        assert decide(text, NOW, CHECKING, trust, MemoryState(), holder=other).reason is Reason.HOLDER_MISMATCH
    without_retired = present_holder(old_claims, HOLDER, new_secret)
    assert decide(old_text, NOW, CHECKING, trust, MemoryState(), holder=without_retired).reason is Reason.HOLDER_MISMATCH
