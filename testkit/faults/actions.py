"""Fault actions on a running ``Site``: each one does to a real process, file or link what the field does.

Kills are SIGKILL (no clean-up code runs, as in a power cut or an OOM kill);
state damage happens while the gate is down, as a bad SD card or an
interrupted re-imaging leaves it; disk full is a real tmpfs filled to the last
byte; partitions are the namespace links of ``testkit.faults.netns`` (a gate's,
or the hub's own link to the broker); a stalled broker is SIGSTOP, alive with
its sockets open but answering nothing, until SIGCONT. Every
action records itself in ``Timeline`` so a check can ask how long a gate had
been away from the live hub when it decided something.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .invariants import Probe
from .site import HUB_LINK, Decided, Site

log = logging.getLogger(__name__)

PAGE = 4096


@dataclass
class Timeline:
    """When each gate lost the live hub (cut link, dead hub, dead broker); wall-clock monotonic seconds."""

    away_since: dict[str, float] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.events.append(text)
        log.info("fault: %s", text)

    def away(self, gates: list[str]) -> None:
        for gate in gates:
            self.away_since.setdefault(gate, time.monotonic())

    def back(self, gates: list[str]) -> None:
        for gate in gates:
            self.away_since.pop(gate, None)

    def away_seconds(self, gate: str) -> float:
        since = self.away_since.get(gate)
        return 0.0 if since is None else time.monotonic() - since


class Faults:
    """The fault actions of one run, with their timeline."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.timeline = Timeline()
        self.probes: list[Probe] = []
        self._mounts: list[Path] = []
        self._cut: set[str] = set()
        self._frozen = False
        self._hub_cut = False

    # ---- processes ---------------------------------------------------------------------------

    def kill_gate(self, name: str) -> None:
        self.site.gates[name].kill()
        self.timeline.note(f"SIGKILL gate {name}")

    def restart_gate(self, name: str) -> None:
        online = name not in self._cut_gates() and not self._frozen  # a frozen broker accepts the TCP connection, never the MQTT one
        self.site.restart_gate(name, online)
        self.timeline.note(f"restarted gate {name}")

    def kill_hub(self) -> None:
        self.site.hub.kill()
        self.timeline.away(list(self.site.gates))
        self.timeline.note("SIGKILL hub")

    def restart_hub(self) -> None:
        self.site.hub.start()
        self._back_where_live()
        self.timeline.note("restarted hub")

    def kill_broker(self, keep_persistence: bool = True) -> None:
        """SIGKILL the broker; without persistence its saved sessions and queues are deleted too."""
        self.site.broker.kill()
        if not keep_persistence:
            shutil.rmtree(self.site.broker.directory / "data")
            (self.site.broker.directory / "data").mkdir()
        self.timeline.away(list(self.site.gates))
        self.timeline.note(f"SIGKILL broker ({'with' if keep_persistence else 'without'} persistence)")

    def restart_broker(self) -> None:
        self.site.start_broker()
        self._frozen = False  # a new process: nothing of the stopped one is left
        self._back_where_live()
        self.timeline.note("restarted broker")

    def freeze_broker(self) -> None:
        """SIGSTOP the broker: alive, connections open, TCP keeps accepting into its buffers, but nothing is
        answered or forwarded (a broker stuck on a dying disk, swapping, or blocked); no gate gets a reset."""
        self.site.broker.process.send_signal(signal.SIGSTOP)
        self._frozen = True
        self.timeline.away(list(self.site.gates))
        self.timeline.note("froze the broker (SIGSTOP)")

    def thaw_broker(self) -> None:
        """SIGCONT: the broker works through everything that queued in its sockets meanwhile."""
        if self._frozen and self.site.broker.process is not None:
            self.site.broker.process.send_signal(signal.SIGCONT)
        self._frozen = False
        self._back_where_live()
        self.timeline.note("thawed the broker (SIGCONT)")

    # ---- partitions --------------------------------------------------------------------------

    def cut(self, name: str, silent: bool = True) -> None:
        if silent:
            self.site.topology.cut_silent(name)
        else:
            self.site.topology.cut_with_reset(name)
        self._cut.add(name)
        self.timeline.away([name])
        self.timeline.note(f"cut gate {name} ({'silent' if silent else 'with reset'})")

    def heal(self, name: str) -> None:
        self.site.topology.heal(name)
        self._cut.discard(name)
        self._back_where_live()
        self.timeline.note(f"healed gate {name}")

    def cut_hub(self, silent: bool = True) -> None:
        """Cut the hub off from the broker while every gate still reaches the broker (the hub's own link)."""
        if silent:
            self.site.topology.cut_silent(HUB_LINK)
        else:
            self.site.topology.cut_with_reset(HUB_LINK)
        self._hub_cut = True
        self.timeline.away(list(self.site.gates))
        self.timeline.note(f"cut the hub from the broker ({'silent' if silent else 'with reset'})")

    def heal_hub(self) -> None:
        self.site.topology.heal(HUB_LINK)
        self._hub_cut = False
        self._back_where_live()
        self.timeline.note("healed the hub's link")

    def _cut_gates(self) -> set[str]:
        return set(self._cut)

    def _hub_live(self) -> bool:
        """Whether a gate with its link up reaches a live hub: hub running, broker running and not frozen, hub link up."""
        broker = self.site.broker.process
        return self.site.hub.running and broker is not None and broker.poll() is None and not self._frozen and not self._hub_cut

    def _back_where_live(self) -> None:
        """After a repair: every gate with its link up is back with the live hub, if there is one now."""
        if self._hub_live():
            self.timeline.back([g for g in self.site.gates if g not in self._cut_gates()])

    @staticmethod
    def keep_fault_for(seconds: float) -> None:
        """Let a fault last: the duration is the scenario (a cut of N seconds), not a wait for something."""
        threading.Event().wait(seconds)

    def step_clock(self, name: str, seconds: float) -> None:
        """Set gate ``name``'s wall clock ``seconds`` off true time (0: put right); needs a site with faketime."""
        self.site.gates[name].step_clock(seconds)
        self.timeline.note(f"clock of {name} at {seconds:+.0f} s")

    # ---- state on disk -----------------------------------------------------------------------

    def wipe_state(self, name: str) -> None:
        """A re-imaged board or a new SD card: the state directory is gone (the gate must be down)."""
        gate = self.site.gates[name]
        assert not gate.running, "wipe a gate's state only while it is down"
        shutil.rmtree(gate.state)
        self.timeline.note(f"wiped state of {name}")

    def garble_state(self, name: str, rng: random.Random) -> None:
        """Overwrite random bytes inside pages past the header, as failing flash does."""
        path = self._state_file(name)
        size = path.stat().st_size
        with path.open("r+b") as handle:
            for _ in range(8):
                offset = rng.randrange(PAGE, max(PAGE + 1, size))
                handle.seek(offset)
                handle.write(rng.randbytes(min(64, size - offset)))
        self.timeline.note(f"garbled state of {name} ({size} bytes)")

    def truncate_state(self, name: str) -> None:
        """Cut the file in the middle of a page: a copy or a write-back interrupted."""
        path = self._state_file(name)
        size = path.stat().st_size
        os.truncate(path, size // 2 + 100)
        self.timeline.note(f"truncated state of {name} from {size} bytes")

    def _state_file(self, name: str) -> Path:
        gate = self.site.gates[name]
        assert not gate.running, "damage a gate's state only while it is down"
        path = gate.state / "state.sqlite3"
        with sqlite3.connect(path) as db:  # fold the WAL into the file, so the damage hits committed pages
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return path

    def mount_small_disk(self, name: str, size: str = "4m") -> None:
        """A small tmpfs as the gate's state directory (before the gate's first start)."""
        state = self.site.gates[name].state
        state.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"lungta-faults-{name}", str(state)], check=True, timeout=10)
        self._mounts.append(state)

    def fill_disk(self, name: str) -> None:
        """Write a filler file until the gate's disk refuses another byte."""
        filler = self.site.gates[name].state / "filler"
        with filler.open("wb", buffering=0) as handle:
            for chunk in (b"\0" * 65536, b"\0"):  # big writes, then byte by byte to the very last one
                _write_until_full(handle, chunk)
        self.timeline.note(f"filled the disk of {name}")

    def free_disk(self, name: str) -> None:
        (self.site.gates[name].state / "filler").unlink()
        self.timeline.note(f"freed the disk of {name}")

    def undo(self) -> None:
        """What must not outlive a run (before ``site.close``): a frozen broker would ignore its SIGTERM."""
        if self._frozen:
            self.thaw_broker()

    def unmount(self) -> None:
        for mount in self._mounts:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)
        self._mounts.clear()

    # ---- probes ------------------------------------------------------------------------------

    def probe(self, name: str, text: str) -> Decided:
        """Show a ticket already admitted elsewhere to gate ``name``; recorded for the offline-deny check."""
        away = self.timeline.away_seconds(name)
        decided = self.site.gates[name].scan(text)
        self.probes.append(Probe(name, decided.ticket, away, decided.granted, decided.reason))
        return decided


def _write_until_full(handle, chunk: bytes) -> None:
    """Write ``chunk`` again and again until the file system says ENOSPC (any other error is raised)."""
    try:
        while True:
            handle.write(chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
