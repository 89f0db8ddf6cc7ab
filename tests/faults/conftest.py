"""Fixtures of the fault suite: ``site_with_faults(**site_options)`` builds a running site and its fault actions.

The suite needs root (network namespaces, tmpfs mounts) and Mosquitto; without
them the tests are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from testkit.faults.actions import Faults
from testkit.faults.site import FAKETIME_LIBRARY, Site

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="the fault suite needs root and iproute2 (network namespaces, tmpfs)")
NEEDS_FAKETIME = pytest.mark.skipif(not FAKETIME_LIBRARY.exists(), reason=f"{FAKETIME_LIBRARY} missing (apt-get install faketime)")


@pytest.fixture
def site_with_faults(tmp_path) -> Iterator[Callable[..., Faults]]:
    """site_with_faults(small_disks=(gate, ...), **Site options) -> Faults on a started site; everything is torn down after the test."""
    made: list[Faults] = []

    def _make(small_disks: tuple[str, ...] = (), **options: object) -> Faults:
        site = Site(tmp_path / f"site{len(made)}", **options)
        faults = Faults(site)
        made.append(faults)
        for gate in small_disks:  # a gate's state directory on its own small tmpfs, mounted before it starts
            faults.mount_small_disk(gate)
        site.start()
        return faults

    yield _make
    for faults in made:
        faults.undo()
        faults.site.close()
        faults.unmount()
