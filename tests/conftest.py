"""Fixtures shared by every test: real keys on disk, a real trust store, a ticket mint."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from nacl.signing import SigningKey

from protocol.claims import TicketClaims
from protocol.keys import write_key_pair
from protocol.ticket import issue_ticket, new_ticket_id
from protocol.trust import TrustedKey, TrustStore

SITE = "potala"
NOW = 1_795_000_000  # 2026-11-18T11:06:40Z, a fixed instant so tests never depend on the wall clock
DAY = 86_400


@pytest.fixture
def issuer_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def trust(issuer_key: SigningKey) -> TrustStore:
    return TrustStore([TrustedKey("sales", issuer_key.verify_key)])


@pytest.fixture
def key_files(tmp_path: Path, issuer_key: SigningKey) -> tuple[Path, Path]:
    return write_key_pair(issuer_key, tmp_path / "keys", "sales")


def make_claims(**overrides: object) -> TicketClaims:
    base = TicketClaims(ticket_id=new_ticket_id(), site=SITE, not_before=NOW - 3600, expires=NOW + DAY, issued_at=NOW - 7200)
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def mint(issuer_key: SigningKey) -> Callable[..., str]:
    """mint(**claim_overrides) -> QR text signed by the trusted issuer key."""

    def _mint(**overrides: object) -> str:
        return issue_ticket(make_claims(**overrides), issuer_key)

    return _mint


@pytest.fixture
def wall_now() -> int:
    return int(time.time())


@pytest.fixture
def hub_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def hub_trust(hub_key: SigningKey) -> TrustStore:
    return TrustStore([TrustedKey("hub", hub_key.verify_key)])


@pytest.fixture(autouse=True)
def _no_leftover_gate() -> Iterator[None]:
    """Whatever gate daemon a test leaves running (it failed before stopping it) is stopped
    before the next test starts: tests/gate/gate_process.py kill_leftovers."""
    yield
    from tests.gate.gate_process import kill_leftovers

    kill_leftovers()
