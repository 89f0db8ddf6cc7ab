"""Network namespaces for the fault suite: one for the site (the broker), one per member (each gate, the hub).

Each member's namespace is joined to the site namespace by its own veth pair
with a private /30 (10.231.<i>.0), so one member's link can be cut without
touching any other, and no traffic ever leaves the namespaces made here. Two
ways to cut (said of a gate; the hub's link is cut the same way):

- ``cut_silent``: the site end of the veth goes down. Nothing tells the gate:
  its packets vanish, TCP sees no reset, as when a radio link or a switch dies.
- ``cut_with_reset``: the broker side of the gate's connection is destroyed
  (``ss -K``, the kernel sends a reset), then the link goes down, so the gate
  learns at once that its connection is gone but cannot come back.

Processes are started in a namespace with ``ip netns exec``; code that must run
in-process (the broker's readiness check) runs in a thread that entered the
namespace with setns(2), which switches only that thread.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class NetnsError(RuntimeError):
    """A namespace or link command failed; names the command and what it printed."""


def ip(*args: str) -> None:
    """Run one ``ip`` command; a failure is an error naming the command."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def run_in(namespace: str, function: Callable[[], T]) -> T:
    """Call ``function`` in a thread that has entered ``namespace``; children it forks live there too."""
    outcome: dict[str, object] = {}

    def enter_and_call() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                outcome["error"] = NetnsError(f"setns {namespace}: {os.strerror(ctypes.get_errno())}")
                return
        finally:
            os.close(fd)
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed back to the caller's thread, which re-raises it
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_call, name=f"netns {namespace}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


@dataclass(frozen=True)
class GateLink:
    """The veth pair between the site namespace and one gate namespace."""

    namespace: str
    site_end: str
    gate_end: str
    site_address: str
    gate_address: str


class Topology:
    """The namespaces and links of one fault run; ``destroy`` removes them all (links go with them)."""

    def __init__(self, members: list[str]) -> None:
        tag = secrets.token_hex(2)
        self.site = f"lt{tag}-site"
        self.links: dict[str, GateLink] = {}
        self._made: list[str] = []
        try:
            self._add_namespace(self.site)
            for index, member in enumerate(members, 1):
                self.links[member] = self._link(tag, index)
        except BaseException:
            self.destroy()
            raise

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _link(self, tag: str, index: int) -> GateLink:
        link = GateLink(f"lt{tag}-g{index}", f"lt{tag}s{index}", f"lt{tag}g{index}", f"10.231.{index}.1", f"10.231.{index}.2")
        self._add_namespace(link.namespace)
        ip("link", "add", link.site_end, "netns", self.site, "type", "veth", "peer", "name", link.gate_end, "netns", link.namespace)
        ip("-n", self.site, "addr", "add", f"{link.site_address}/30", "dev", link.site_end)
        ip("-n", link.namespace, "addr", "add", f"{link.gate_address}/30", "dev", link.gate_end)
        ip("-n", link.namespace, "link", "set", link.gate_end, "up")
        ip("-n", self.site, "link", "set", link.site_end, "up")
        return link

    def cut_silent(self, gate: str) -> None:
        ip("-n", self.site, "link", "set", self.links[gate].site_end, "down")

    def cut_with_reset(self, gate: str) -> None:
        link = self.links[gate]
        result = subprocess.run(["ip", "netns", "exec", self.site, "ss", "-K", "dst", link.gate_address], capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise NetnsError(f"ss -K dst {link.gate_address} in {self.site}: {result.stderr.strip()}")
        self.cut_silent(gate)

    def heal(self, gate: str) -> None:
        ip("-n", self.site, "link", "set", self.links[gate].site_end, "up")

    def exec_prefix(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def destroy(self) -> None:
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        self._made.clear()
