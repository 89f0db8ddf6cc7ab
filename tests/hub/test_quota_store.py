"""The quota ledger in the SQLite hub store, and the quota keys of hub.toml."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lungta.config import ConfigError, load_hub_config
from hub.quota import GateReport, GateSlot, LeaseGrant, Quota, QuotaUse, SentLease, SlotReport, record_report
from hub.sqlite_quotas import RECENT_BUCKET_MS
from hub.sqlite_store import SqliteHubStore
from protocol.hub_messages import decode_lease

QUOTA = Quota("2026-11-18", 540, 600, 100)
T0 = 1_795_000_000_000


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteHubStore(tmp_path / "hub.db")
    yield opened
    opened.close()


def test_quotas_are_set_changed_and_listed_by_day(store):
    store.set_quota(QUOTA, T0)
    store.set_quota(Quota("2026-11-19", 0, 1440, 5), T0)
    store.set_quota(Quota("2026-11-18", 540, 600, 80), T0 + 1)
    assert store.quotas() == [Quota("2026-11-18", 540, 600, 80), Quota("2026-11-19", 0, 1440, 5)]
    assert store.quotas("2026-11-19") == [Quota("2026-11-19", 0, 1440, 5)]
    assert store.quotas(None, "2026-11-18") == [Quota("2026-11-18", 540, 600, 80)]


def test_a_lease_is_an_outbox_row_whose_lease_id_is_its_stream_seq(store):
    rows = store.add_leases(QUOTA, [LeaseGrant("g1", 7, T0 + 120_000), LeaseGrant("g2", 0, T0 + 120_000)], T0)
    rows += store.add_leases(QUOTA, [LeaseGrant("g1", 9, T0 + 130_000)], T0 + 10_000)
    assert [(row.stream, row.seq) for row in rows] == [("quota/g1", 1), ("quota/g2", 1), ("quota/g1", 2)]
    lease = decode_lease(rows[2].body)
    assert (lease.day, lease.slot_start, lease.slot_end, lease.granted, lease.lease_id, lease.expires_ms) == ("2026-11-18", 540, 600, 9, 2, T0 + 130_000)
    assert [row.row_id for row in store.unpublished(10)] == [row.row_id for row in rows]
    (g1, g2) = store.quota_ledger(QUOTA.day, QUOTA.slot_start, T0)
    assert g1.leases == (SentLease(1, 7, T0 + 120_000, T0), SentLease(2, 9, T0 + 130_000, T0 + 10_000)) and g2.leases[0].granted == 0


def test_uses_add_up_and_only_recent_ones_count_as_demand(store):
    old, new = T0 - 10 * RECENT_BUCKET_MS, T0 + 1
    store.add_leases(QUOTA, [LeaseGrant("g1", 10, T0 + 120_000), LeaseGrant("g2", 10, T0 + 120_000)], T0)
    store.add_quota_uses([QuotaUse("g1", QUOTA.day, 540, old, 4), QuotaUse("g1", QUOTA.day, 540, new, 3), QuotaUse("g1", QUOTA.day, 540, new, -1)])
    store.add_quota_uses([QuotaUse("g2", QUOTA.day, 540, new, 5), QuotaUse("g2", QUOTA.day, 600, new, 50)])
    (g1, g2) = store.quota_ledger(QUOTA.day, 540, T0)
    assert (g1.admitted, g1.recent, g2.admitted, g2.recent) == (6, 2, 5, 5)


def test_a_gate_cannot_count_more_persons_than_the_leases_it_was_sent(store):
    store.add_leases(QUOTA, [LeaseGrant("g1", 10, T0 + 120_000)], T0)
    store.add_quota_uses([QuotaUse("g1", QUOTA.day, 540, T0, 2**31 - 1), QuotaUse("g2", QUOTA.day, 540, T0, 5)])
    assert {slot.gate: slot.admitted for slot in store.quota_ledger(QUOTA.day, 540, T0)} == {"g1": 10, "g2": 0}, "2^31 persons claimed cannot starve the slot"


def test_persons_under_no_lease_are_counted_apart_and_unbounded_by_leases(store):
    store.add_leases(QUOTA, [LeaseGrant("g1", 2, T0 + 120_000)], T0)
    store.add_quota_uses([QuotaUse("g1", QUOTA.day, 540, T0, 2), QuotaUse("g1", QUOTA.day, 540, T0, 3, leased=False), QuotaUse("g2", QUOTA.day, 540, T0, 4, leased=False)])
    ledger = {slot.gate: (slot.admitted, slot.unleased, slot.recent) for slot in store.quota_ledger(QUOTA.day, 540, T0)}
    assert ledger == {"g1": (2, 3, 5), "g2": (0, 4, 4)}


def test_a_database_from_before_unleased_counts_gets_the_column(tmp_path: Path):
    path = tmp_path / "hub.db"
    SqliteHubStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE quota_gates DROP COLUMN unleased")
    reopened = SqliteHubStore(path)
    try:
        reopened.add_quota_uses([QuotaUse("g1", QUOTA.day, 540, T0, 3, leased=False)])
        assert [slot.unleased for slot in reopened.quota_ledger(QUOTA.day, 540, T0)] == [3]
    finally:
        reopened.close()


def test_reports_keep_the_newest_and_prune_like_record_report(store):
    store.add_leases(QUOTA, [LeaseGrant("g1", granted, T0 + 120_000) for granted in (50, 10, 12)], T0)
    sequence = [GateReport(T0 + 5, 2, 8), GateReport(T0 + 1, 3, 0), GateReport(T0 + 9, 2, 9)]
    expected = store.quota_ledger(QUOTA.day, 540, T0)[0]
    for report in sequence:
        store.save_quota_reports("g1", [SlotReport(QUOTA.day, 540, report)])
        expected = record_report(expected, report)
    (stored,) = store.quota_ledger(QUOTA.day, 540, T0)
    assert stored == expected
    assert stored.report == GateReport(T0 + 9, 2, 9) and [lease.lease_id for lease in stored.leases] == [2, 3]


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nsite = "potala"\nkey = "hub.key"\ndatabase = "hub.db"\n{extra}', encoding="utf-8")
    return path


def test_quota_keys_have_defaults_and_are_checked(tmp_path):
    config = load_hub_config(write(tmp_path, ""))
    assert (config.quota_lease_s, config.quota_skew_s, config.timezone.key) == (120, 30, "Asia/Shanghai")
    config = load_hub_config(write(tmp_path, 'quota_lease_s = 3\nquota_skew_s = 0\ntimezone = "Europe/Paris"\n'))
    assert (config.quota_lease_s, config.quota_skew_s, config.timezone.key) == (3, 0, "Europe/Paris")
    for bad, key in (("quota_lease_s = 0", "hub.quota_lease_s"), ("quota_skew_s = -1", "hub.quota_skew_s"), ('timezone = "Mars/Olympus"', "hub.timezone")):
        with pytest.raises(ConfigError) as caught:
            load_hub_config(write(tmp_path, bad + "\n"))
        assert str(caught.value).split(": ")[1] == key
