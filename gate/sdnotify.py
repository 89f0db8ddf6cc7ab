"""systemd's sd_notify protocol: READY, STATUS, STOPPING and WATCHDOG pings.

The protocol is one datagram per message to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading '@' means the abstract namespace), so it
needs no library. Outside systemd the variable is unset and every call is a
no-op. The watchdog interval comes from ``$WATCHDOG_USEC``; the daemon pings
at half of it from the decision loop, so a stalled loop stops the pings and
systemd restarts the gate.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET")
        self._address: str | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC")
        self.watchdog_seconds = int(usec) / 1e6 if usec and usec.isdigit() and int(usec) > 0 else None
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, message: str) -> None:
        if self._socket is None or self._address is None:
            return
        try:
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            log.warning("sd_notify %r failed: %s", message.split("=")[0], exc)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
