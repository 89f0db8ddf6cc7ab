"""Private files for the gate's state: directories 0700, files 0600, never through a symlink.

The state holds every admission and the outbox the hub trusts; another local
user must not read or swap it. ``O_NOFOLLOW`` refuses a symlink planted at a
file's name (an attacker's link would otherwise redirect our writes), and
modes are set on creation so no umask leaves a window. Existing files keep
their content but are brought to these modes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) 0700; refuse a symlink at its name; raise OSError."""
    if not directory.is_symlink() and not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            pass
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{directory}: not a directory (a symlink or file is in the way)")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE, follow_symlinks=False)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` with O_NOFOLLOW | O_CLOEXEC and mode 0600 for a file it creates; raises OSError."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private_file(path: Path) -> None:
    """Make sure ``path`` exists as a regular 0600 file of ours (SQLite then opens it; its -wal and -shm inherit the mode)."""
    os.close(open_private(path, os.O_RDWR | os.O_CREAT))
