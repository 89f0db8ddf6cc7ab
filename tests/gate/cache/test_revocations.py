"""The revocation set on real files: what a gate operator or the hub sync would notice."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gate.cache import revocation_files, revocations
from gate.cache.revocations import (
    NEVER_EXPIRES,
    CorruptStore,
    InvalidEntry,
    RevocationSet,
    SequenceGap,
    StoreClosed,
    StoreLocked,
    revocation_key,
)

REPO = Path(__file__).resolve().parents[3]
NOW = 1_795_000_000
LATER = NOW + 86_400


def ids(count: int, tag: bytes = b"T") -> list[bytes]:
    return [tag + index.to_bytes(11, "big") for index in range(count)]


def revoked(entries: list[bytes], expiry: int = LATER) -> list[tuple[bytes, int]]:
    return [(ticket_id, expiry) for ticket_id in entries]


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "revocations"


def test_revoked_ticket_is_found_after_restart_and_others_are_not(store_dir: Path) -> None:
    tickets = ids(300)
    with RevocationSet.open(store_dir) as store:
        store.apply_delta(1, revoked(tickets[:100]))
        store.apply_delta(2, revoked(tickets[100:200]))
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == 2
        assert len(store) == 200
        assert all(store.is_revoked(ticket) for ticket in tickets[:200])
        assert not any(ticket in store for ticket in tickets[200:])


def test_replayed_delta_is_a_no_op(store_dir: Path) -> None:
    first, second, replay = ids(10, b"A"), ids(10, b"B"), ids(10, b"C")
    with RevocationSet.open(store_dir) as store:
        store.apply_delta(1, revoked(first))
        store.apply_delta(2, revoked(second))
        store.apply_delta(1, revoked(replay))
        store.apply_delta(2, revoked(replay))
        assert store.sequence == 2 and len(store) == 20
        assert not any(ticket in store for ticket in replay)
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == 2 and len(store) == 20


def test_delta_after_a_gap_is_refused_and_changes_nothing(store_dir: Path) -> None:
    with RevocationSet.open(store_dir) as store:
        store.apply_delta(1, revoked(ids(5)))
        with pytest.raises(SequenceGap) as refused:
            store.apply_delta(3, revoked(ids(5, b"X")))
        assert (refused.value.expected, refused.value.received) == (2, 3)
        assert str(store_dir) in str(refused.value)
        store.apply_delta(2, revoked(ids(5, b"Y")))
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == 2 and len(store) == 10
        assert ids(5, b"X")[0] not in store


def test_invalid_entry_writes_nothing(store_dir: Path) -> None:
    with RevocationSet.open(store_dir) as store:
        with pytest.raises(InvalidEntry, match="entry 1"):
            store.apply_delta(1, [(b"good-ticket-id", LATER), ("a1b2c3", LATER)])  # type: ignore[list-item]
        with pytest.raises(InvalidEntry, match="expiry"):
            store.revoke_local([(b"good-ticket-id", -1)])
        assert store.sequence == 0 and len(store) == 0
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == 0 and len(store) == 0


@pytest.mark.parametrize("damage", ["cut mid-frame", "garbage appended", "last byte flipped"])
def test_torn_log_tail_is_ignored_and_the_store_goes_on(store_dir: Path, damage: str) -> None:
    kept, torn = ids(50, b"K"), ids(50, b"L")
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        store.apply_delta(1, revoked(kept))
        store.apply_delta(2, revoked(torn))
    (log,) = store_dir.glob("delta.*.log")
    data = log.read_bytes()
    if damage == "cut mid-frame":
        log.write_bytes(data[:-300])
    elif damage == "garbage appended":
        log.write_bytes(data + os.urandom(37))
    else:
        log.write_bytes(data[:-1] + bytes([data[-1] ^ 0x40]))
    with RevocationSet.open(store_dir) as store:
        expected = 2 if damage == "garbage appended" else 1
        assert store.sequence == expected
        assert all(ticket in store for ticket in kept)
        assert all((ticket in store) == (expected == 2) for ticket in torn)
        store.apply_delta(expected + 1, revoked(ids(5, b"M")))
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == expected + 1 and ids(5, b"M")[4] in store


def test_expired_entries_are_pruned_everywhere_and_stay_pruned(store_dir: Path) -> None:
    old_base, new_base = ids(100, b"a"), ids(100, b"b")
    old_overlay, new_overlay = ids(10, b"c"), ids(10, b"d")
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        store.apply_delta(1, revoked(old_base, NOW - 10) + revoked(new_base, LATER))
        store.compact()
        store.apply_delta(2, revoked(old_overlay, NOW) + revoked(new_overlay, NEVER_EXPIRES))
        store.revoke_local([(b"local-old-ticket", NOW - 1), (b"local-new-ticket", LATER)])
        assert len(store) == 222
        assert store.prune_expired(NOW) == 111
        assert len(store) == 111
    with RevocationSet.open(store_dir) as store:
        assert len(store) == 111
        assert not any(ticket in store for ticket in old_base + old_overlay + [b"local-old-ticket"])
        assert all(ticket in store for ticket in new_base + new_overlay + [b"local-new-ticket"])


def test_a_later_revocation_of_the_same_ticket_extends_its_expiry(store_dir: Path) -> None:
    ticket = b"refunded-then-reissued"
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        store.apply_delta(1, [(ticket, NOW - 100)])
        store.compact()
        store.apply_delta(2, [(ticket, LATER), (ticket, NOW - 50)])
        assert len(store) == 1
        store.prune_expired(NOW)
        assert ticket in store and len(store) == 1


def test_snapshot_replaces_hub_entries_but_keeps_local_revocations(store_dir: Path) -> None:
    hub_old, snapshot, local = ids(40, b"o"), ids(60, b"s"), ids(3, b"l")
    with RevocationSet.open(store_dir) as store:
        store.apply_delta(1, revoked(hub_old))
        store.revoke_local(revoked(local))
        store.replace_with_snapshot(7, revoked(snapshot))
        assert store.sequence == 7
        with pytest.raises(SequenceGap):
            store.apply_delta(9, [])
        store.apply_delta(8, revoked(ids(1, b"n")))
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == 8 and len(store) == 64
        assert not any(ticket in store for ticket in hub_old)
        assert all(ticket in store for ticket in snapshot + local)


def test_a_snapshot_stores_what_deltas_store_for_the_same_entries(store_dir: Path, tmp_path: Path) -> None:
    """Snapshots are hashed in bulk, deltas entry by entry: the same ids and expiries give the same records."""
    entries = [(os.urandom(length), expiry) for length in (1, 12, 16, 64) for expiry in (0, LATER, NEVER_EXPIRES, NEVER_EXPIRES + 1, 2**70)]
    with RevocationSet.open(store_dir) as snapshot, RevocationSet.open(tmp_path / "deltas") as deltas:
        snapshot.replace_with_snapshot(1, iter(entries))
        deltas.apply_delta(1, entries)
        deltas.compact()
        assert (store_dir / "base.rev").read_bytes()[-len(entries) * 16:] == (tmp_path / "deltas" / "base.rev").read_bytes()[-len(entries) * 16:]
        assert all(snapshot.is_revoked(ticket_id) for ticket_id, _ in entries)


@pytest.mark.parametrize("bad, why", [(("a1b2c3", LATER), "ticket id"), ((b"", LATER), "ticket id"), ((b"x" * 65, LATER), "ticket id"),
                                      ((b"good-ticket-id", -1), "expiry"), ((b"good-ticket-id", True), "expiry"), ((b"good-ticket-id", 1.5), "expiry")])
def test_a_snapshot_with_a_bad_entry_names_it_and_changes_nothing(store_dir: Path, bad: tuple, why: str) -> None:
    with RevocationSet.open(store_dir) as store:
        store.apply_delta(1, revoked(ids(3)))
        with pytest.raises(InvalidEntry, match=f"entry 2: {why}"):
            store.replace_with_snapshot(5, revoked(ids(2, b"s")) + [bad])
        assert store.sequence == 1 and len(store) == 3


def test_snapshot_from_a_hub_restored_from_backup_moves_the_sequence_back(store_dir: Path) -> None:
    with RevocationSet.open(store_dir) as store:
        for sequence in range(1, 6):
            store.apply_delta(sequence, revoked(ids(2, bytes([sequence]))))
        store.replace_with_snapshot(3, revoked(ids(4, b"r")))
        store.apply_delta(4, revoked(ids(1, b"after")))
    with RevocationSet.open(store_dir) as store:
        assert store.sequence == 4 and len(store) == 5


def test_keys_ending_in_zero_bytes_are_found(store_dir: Path) -> None:
    """numpy turns S12 values into bytes without trailing NULs; no path may rely on that."""
    zero_tailed = [t for t in (index.to_bytes(12, "big") for index in range(20_000)) if revocation_key(t)[-1] == 0][:20]
    assert len(zero_tailed) >= 10
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        store.apply_delta(1, revoked(zero_tailed[:10]))
        store.compact()
        store.apply_delta(2, revoked(zero_tailed))  # half already in the base: must not count twice
        assert len(store) == len(zero_tailed)
    with RevocationSet.open(store_dir) as store:
        assert len(store) == len(zero_tailed) and all(ticket in store for ticket in zero_tailed)


def test_snapshot_and_compaction_work_in_slices(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocation_files, "CHUNK_RECORDS", 997)
    base, more = ids(10_000, b"b"), ids(3_000, b"m")
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        store.replace_with_snapshot(1, revoked(base) + revoked(base[:100], NOW))  # sorted in 16 slices
        assert len(store) == 10_000
        store.apply_delta(2, revoked(more) + revoked(base[::7]))
        store.compact()
        assert store.stats().overlay_entries == 0
    with RevocationSet.open(store_dir) as store:
        store_base = revocation_files.SortedIds(store_dir / "base.rev")
        store_base.verify()
        keys = store_base.records["key"]
        assert bool(np.all(keys[1:] > keys[:-1]))
        assert len(store) == 13_000 and all(ticket in store for ticket in base + more)


def test_a_failed_compaction_loses_nothing(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    tickets = ids(3_000)
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        store.replace_with_snapshot(1, revoked(tickets[:1_000]))
        store.apply_delta(2, revoked(tickets[1_000:2_000]))
        with monkeypatch.context() as patch:
            patch.setattr(revocations, "write_merged", disk_full)
            with pytest.raises(OSError):
                store.compact()
        store.apply_delta(3, revoked(tickets[2_000:]))
        assert len(store) == 3_000 and all(ticket in store for ticket in tickets)
    with RevocationSet.open(store_dir, auto_compact=False) as store:
        assert store.sequence == 3 and len(store) == 3_000
        store.compact()
        assert store.stats().base_entries == 3_000 and all(ticket in store for ticket in tickets)


def test_lookups_stay_correct_during_background_compaction(store_dir: Path) -> None:
    tickets = ids(60_000)
    with RevocationSet.open(store_dir, overlay_limit=5_000) as store:
        store.replace_with_snapshot(1, revoked(tickets[:20_000]))
        applied = [20_000]
        misses: list[bytes] = []
        stop = threading.Event()

        def read() -> None:
            rng = random.Random(1)
            while not stop.is_set():
                ticket = tickets[rng.randrange(applied[0])]
                if ticket not in store:
                    misses.append(ticket)

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        for sequence, start in enumerate(range(20_000, 60_000, 1_000), start=2):
            store.apply_delta(sequence, revoked(tickets[start : start + 1_000]))
            applied[0] = start + 1_000
        stop.set()
        for reader in readers:
            reader.join()
        assert not misses
        assert store.stats().base_entries > 20_000, "no background compaction ran"
    with RevocationSet.open(store_dir) as store:
        assert len(store) == 60_000


def test_one_million_entries_build_and_look_up_correctly(store_dir: Path) -> None:
    present = [os.urandom(16) for _ in range(1_000_000)]
    absent = [os.urandom(16) for _ in range(250_000)]
    with RevocationSet.open(store_dir) as store:
        store.replace_with_snapshot(1, ((ticket, LATER) for ticket in present))
    start = time.perf_counter()
    with RevocationSet.open(store_dir) as store:
        assert present[0] in store
        assert time.perf_counter() - start < 1.0
        assert len(store) == 1_000_000
        assert all(map(store.is_revoked, present))
        assert not any(map(store.is_revoked, absent))
    assert (store_dir / "base.rev").stat().st_size < 16.2 * 1_000_000


def test_second_open_of_the_same_directory_is_refused(store_dir: Path) -> None:
    with RevocationSet.open(store_dir):
        with pytest.raises(StoreLocked, match=str(store_dir)):
            RevocationSet.open(store_dir)
    RevocationSet.open(store_dir).close()


def test_use_after_close_is_an_error(store_dir: Path) -> None:
    store = RevocationSet.open(store_dir)
    store.close()
    store.close()
    with pytest.raises(StoreClosed):
        store.is_revoked(b"any-ticket-id")
    with pytest.raises(StoreClosed):
        store.apply_delta(1, [])


def test_damaged_base_file_is_reported_by_name(store_dir: Path) -> None:
    with RevocationSet.open(store_dir) as store:
        store.replace_with_snapshot(1, revoked(ids(1_000)))
    base = store_dir / "base.rev"
    data = bytearray(base.read_bytes())
    data[64 + 16 * 500] ^= 1
    base.write_bytes(bytes(data))
    with pytest.raises(CorruptStore, match="body checksum"):
        revocation_files.SortedIds(base).verify()
    base.write_bytes(bytes(data[:-3]))
    with pytest.raises(CorruptStore, match=str(base)):
        RevocationSet.open(store_dir)


# ---- SIGKILL at random moments ----------------------------------------------------------

PER_DELTA = 20
CHILD = f"""
import sys
from pathlib import Path
from gate.cache.revocations import RevocationSet

def ticket(sequence, index):
    return sequence.to_bytes(8, "big") + index.to_bytes(4, "big")

store = RevocationSet.open(Path(sys.argv[1]), overlay_limit=300)
print("open", store.sequence, flush=True)
while True:
    sequence = store.sequence + 1
    if sequence % 41 == 0:  # catch-up snapshot holding exactly what the deltas would
        store.replace_with_snapshot(sequence, [(ticket(s, i), 2**31) for s in range(1, sequence + 1) for i in range({PER_DELTA})])
    else:
        store.apply_delta(sequence, [(ticket(sequence, i), 2**31) for i in range({PER_DELTA})])
    print("delta", sequence, flush=True)
    if sequence % 5 == 0:
        store.revoke_local([(b"L" + sequence.to_bytes(11, "big"), 2**31)])
        print("local", sequence, flush=True)
    if sequence % 17 == 0:
        store.compact()
        print("compact", sequence, flush=True)
"""


def _ticket(sequence: int, index: int) -> bytes:
    return sequence.to_bytes(8, "big") + index.to_bytes(4, "big")


def _local(sequence: int) -> bytes:
    return b"L" + sequence.to_bytes(11, "big")


def test_sigkill_at_random_moments_loses_no_returned_delta(store_dir: Path) -> None:
    rng = random.Random(20261123)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    confirmed, confirmed_local, cycles = 0, set(), int(os.environ.get("LUNGTA_CRASH_CYCLES", "30"))
    for _ in range(cycles):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(store_dir)], stdout=subprocess.PIPE, text=True, env=env)
        assert child.stdout is not None
        for _ in range(rng.randrange(0, 45)):
            words = child.stdout.readline().split()
            if not words:
                break
            if words[0] == "delta":
                confirmed = int(words[1])
            elif words[0] == "local":
                confirmed_local.add(int(words[1]))
        time.sleep(rng.random() * 0.004)  # spreads the kill inside the next step; not used to synchronise
        child.kill()
        child.wait()
        child.stdout.close()
        with RevocationSet.open(store_dir, auto_compact=False) as store:
            sequence = store.sequence
            assert sequence >= confirmed, f"delta {confirmed} returned but the store is at {sequence}"
            assert all(_ticket(s, i) in store for s in range(1, sequence + 1) for i in range(PER_DELTA))
            assert not any(_ticket(sequence + 1, i) in store for i in range(PER_DELTA))
            assert all(_local(s) in store for s in confirmed_local)
            locals_present = sum(_local(s) in store for s in range(5, sequence + 1, 5))
            assert len(store) == sequence * PER_DELTA + locals_present
            revocation_files.SortedIds(store_dir / "base.rev").verify()
        confirmed = sequence
    assert confirmed > 40, "the child did not get far enough to exercise compaction and snapshots"
