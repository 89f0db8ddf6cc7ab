"""Serial ports for the gates' scanners: ptys in a devpts instance of the suite's own.

On a shared machine a gate daemon left over from some other run may still be
retrying to open a /dev/pts/N that has since gone; when the kernel hands that
number out again, the stray daemon takes the port lock (and reads the tickets).
A private devpts instance (``mount -t devpts -o newinstance``) gives ptys at
paths no other process knows, so each scanner gets exactly the port the
harness types into.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import tty
from pathlib import Path

TIOCSPTLCK = 0x40045431  # unlock the slave of a new pty (what unlockpt() does)
TIOCGPTN = 0x80045430  # the number of a pty master (what ptsname() reads)


class PrivatePtys:
    """A devpts mounted at ``directory``; ``open()`` gives (master fd, slave path) in raw mode."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "lungta-faults-pts", str(directory)], check=True, capture_output=True, timeout=10)
        self.directory = directory
        self._fds: list[int] = []

    def open(self) -> tuple[int, str]:
        master = os.open(self.directory / "ptmx", os.O_RDWR | os.O_NOCTTY)
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("i", fcntl.ioctl(master, TIOCGPTN, struct.pack("i", 0)))[0]
        path = str(self.directory / str(number))
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY)  # held open so the line discipline stays raw between gate restarts
        tty.setraw(slave)
        self._fds += [master, slave]
        return master, path

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        subprocess.run(["umount", "-l", str(self.directory)], capture_output=True, timeout=10)
