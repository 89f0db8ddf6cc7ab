"""The gate's trust lists: installed only from the pinned root, never backwards, kept across restarts, swapped whole."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gate.clock import GateClock
from gate.decision import Reason
from gate.rules import GateRules
from gate.trustlist import FILENAME, TrustListKeeper
from gate.validator import Validator, open_validator
from protocol.trust import TrustedKey, TrustStore
from protocol.trustlist import new_trust_list, sign_trust_list
from protocol.ticket import issue_ticket
from testkit.tickets import NOW, SITE, make_claims


@pytest.fixture
def root() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def new_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def validator(tmp_path: Path, trust: TrustStore):
    v = open_validator(tmp_path / "state", GateRules(site=SITE, gate_id="east-1"), trust, clock=GateClock(0, wall=lambda: NOW))
    yield v
    v.close()


def _keeper(tmp_path: Path, validator: Validator, root: SigningKey | None) -> TrustListKeeper:
    return TrustListKeeper(tmp_path / "state", SITE, None if root is None else root.verify_key, lambda trust_list: validator.replace_trust(trust_list.trust_store()))


def _list(root: SigningKey, version: int, *keys: SigningKey, site: str = SITE, issued_at: int = NOW) -> bytes:
    return sign_trust_list(new_trust_list(site, version, issued_at, [TrustedKey(f"k{index}", key.verify_key) for index, key in enumerate(keys)]), root)


def test_a_list_withdrawing_the_key_makes_its_tickets_unknown_and_the_new_key_valid(tmp_path, validator, root, new_key, mint, issuer_key) -> None:
    assert validator.scan(mint()).decision.granted
    keeper = _keeper(tmp_path, validator, root)
    assert keeper.receive(_list(root, 1, new_key))
    assert keeper.version == 1
    assert validator.scan(mint()).decision.reason is Reason.UNKNOWN_KEY
    assert validator.scan(issue_ticket(make_claims(), new_key)).decision.granted


def test_the_installed_list_is_used_again_after_a_restart_before_any_network(tmp_path, validator, root, new_key, mint, trust) -> None:
    assert _keeper(tmp_path, validator, root).receive(_list(root, 4, new_key))
    restarted = open_validator(tmp_path / "state2", GateRules(site=SITE, gate_id="east-1"), trust, clock=GateClock(0, wall=lambda: NOW))
    try:
        (tmp_path / "state2" / FILENAME).write_bytes((tmp_path / "state" / FILENAME).read_bytes())
        keeper = TrustListKeeper(tmp_path / "state2", SITE, root.verify_key, lambda trust_list: restarted.replace_trust(trust_list.trust_store()))
        assert restarted.scan(mint()).decision.granted  # the local trust file, until the saved list is loaded
        assert keeper.load_saved() is not None and keeper.version == 4
        assert restarted.scan(mint()).decision.reason is Reason.UNKNOWN_KEY
    finally:
        restarted.close()


def test_the_saved_list_is_private_and_replaced_whole(tmp_path, validator, root, new_key) -> None:
    keeper = _keeper(tmp_path, validator, root)
    keeper.receive(_list(root, 1, new_key))
    second = _list(root, 2)
    keeper.receive(second)
    saved = tmp_path / "state" / FILENAME
    assert saved.read_bytes() == second
    assert os.stat(saved).st_mode & 0o777 == 0o600
    assert [path.name for path in saved.parent.iterdir() if path.name.startswith(f".{FILENAME}")] == []


def test_a_forged_list_is_dropped_logged_and_counted(tmp_path, validator, root, new_key, mint, caplog) -> None:
    keeper = _keeper(tmp_path, validator, root)
    with caplog.at_level(logging.WARNING, logger="gate.trustlist"):
        assert not keeper.receive(_list(SigningKey.generate(), 7, new_key))
    assert "trust list refused source=hub reason=bad_signature" in caplog.text
    assert keeper.refused_by_reason() == {"bad_signature": 1} and keeper.version is None
    assert validator.scan(mint()).decision.granted  # still the old trust
    assert not (tmp_path / "state" / FILENAME).exists()


@pytest.mark.parametrize("version", [2, 3])
def test_a_list_not_newer_than_the_installed_one_is_a_refused_rollback(tmp_path, validator, root, new_key, mint, version, caplog) -> None:
    keeper = _keeper(tmp_path, validator, root)
    assert keeper.receive(_list(root, 3, new_key))
    with caplog.at_level(logging.WARNING, logger="gate.trustlist"):
        assert not keeper.receive(_list(root, version, SigningKey.generate(), issued_at=NOW + 1))
    assert "reason=stale" in caplog.text
    assert keeper.version == 3 and keeper.refused == 1
    assert validator.scan(mint()).decision.reason is Reason.UNKNOWN_KEY


def test_the_same_list_again_is_not_news(tmp_path, validator, root, new_key, caplog) -> None:
    keeper = _keeper(tmp_path, validator, root)
    data = _list(root, 1, new_key)
    keeper.receive(data)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gate.trustlist"):
        assert not keeper.receive(data)  # the retained copy at a reconnect
    assert caplog.text == "" and keeper.refused == 0


def test_another_sites_list_and_garbage_are_refused(tmp_path, validator, root, new_key) -> None:
    keeper = _keeper(tmp_path, validator, root)
    assert not keeper.receive(_list(root, 1, new_key, site="jokhang"))
    assert not keeper.receive(b"\xd2\x84\x40")
    assert keeper.refused_by_reason() == {"wrong_site": 1, "malformed": 1}


def test_a_gate_without_a_pinned_root_ignores_lists_saying_so_once(tmp_path, validator, root, new_key, mint, caplog) -> None:
    keeper = _keeper(tmp_path, validator, None)
    with caplog.at_level(logging.WARNING, logger="gate.trustlist"):
        assert not keeper.receive(_list(root, 1, new_key))
        assert not keeper.receive(_list(root, 2, new_key))
    assert caplog.text.count("no site_root pinned") == 1
    assert validator.scan(mint()).decision.granted


def test_a_saved_list_of_another_root_is_not_used_at_start(tmp_path, validator, root, new_key, mint, caplog) -> None:
    (tmp_path / "state" / FILENAME).write_bytes(_list(SigningKey.generate(), 5, new_key))
    keeper = _keeper(tmp_path, validator, root)
    with caplog.at_level(logging.WARNING, logger="gate.trustlist"):
        assert keeper.load_saved() is None
    assert "reason=bad_signature" in caplog.text
    assert validator.scan(mint()).decision.granted


def test_a_list_in_a_quarantined_state_is_still_used_at_start(tmp_path, validator, root, new_key, mint) -> None:
    moved = tmp_path / "state" / "quarantine" / "20261128T100000Z"
    moved.mkdir(parents=True)
    (moved / FILENAME).write_bytes(_list(root, 6, new_key))
    keeper = _keeper(tmp_path, validator, root)
    assert keeper.load_saved() is not None and keeper.version == 6
    assert validator.scan(mint()).decision.reason is Reason.UNKNOWN_KEY
    assert (tmp_path / "state" / FILENAME).read_bytes() == (moved / FILENAME).read_bytes()  # kept in the new state too


def test_a_folder_or_a_link_where_the_saved_list_should_be_is_not_a_crash_at_start(tmp_path, validator, root, new_key, mint, caplog) -> None:
    (tmp_path / "state" / FILENAME).mkdir()
    keeper = _keeper(tmp_path, validator, root)
    with caplog.at_level(logging.WARNING, logger="gate.trustlist"):
        assert keeper.load_saved() is None
        (tmp_path / "state" / FILENAME).rmdir()
        (tmp_path / "elsewhere.cose").write_bytes(_list(root, 2, new_key))
        (tmp_path / "state" / FILENAME).symlink_to(tmp_path / "elsewhere.cose")
        assert keeper.load_saved() is None  # a planted link is not followed
    assert caplog.text.count("reason=unreadable") == 2
    assert validator.scan(mint()).decision.granted


def test_gate_state_shows_the_installed_list_checked_against_the_site_root(tmp_path, validator, root, new_key) -> None:
    """The IT person at a gate the hub cannot see: which trust list does it hold?"""
    import json

    from protocol.keys import write_key_pair
    from testkit.live_gate import lungta

    assert _keeper(tmp_path, validator, root).receive(_list(root, 3, new_key))
    _, root_pub = write_key_pair(root, tmp_path / "root", "site-root")
    _, other_pub = write_key_pair(SigningKey.generate(), tmp_path / "other", "site-root")

    def state(*extra: str) -> dict:
        import subprocess
        shown = subprocess.run(lungta("gate", "state", "--state", str(tmp_path / "state"), *extra), capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)["trust_list"]

    checked = state("--site-root", str(root_pub))
    assert checked["verified"] and checked["version"] == 3 and [key["name"] for key in checked["keys"]] == ["k0"]
    assert state()["verified"] is False, "without the root nothing of it is shown as fact"
    assert state("--site-root", str(other_pub)) | {"file": None} == {"file": None, "verified": False, "refused": "bad_signature"}
