"""A Mosquitto of our own for tests, benchmarks and the demo: config, users, ACL, port; restartable.

``Broker`` writes a config in its directory (password file hashed with
``mosquitto_passwd``, the site ACL from ``hub.broker_files``, persistence on),
starts ``mosquitto`` on a free loopback port, and waits until the port accepts
connections (polling a TCP connect with a deadline, never a fixed sleep).
``stop()`` is a clean SIGTERM, so the broker saves its persistence file and a
later ``start()`` on the same port restores sessions and queued messages.
Production brokers are configured from deploy/mosquitto/ instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hub.broker_files import MAX_PACKET_BYTES, acl_text, write_password_file

SITE = "potala"
HUB_USER = "hub-potala"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class BrokerError(RuntimeError):
    pass


class Broker:
    """One mosquitto process; ``users`` maps username -> password (gates: username = gate id)."""

    def __init__(self, directory: Path, site: str = SITE, gates: list[str] | None = None, hub_user: str = HUB_USER, max_queued: int = 1000, max_inflight: int = 100,
                 tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certfile, keyfile) of the broker's certificate, to listen with TLS instead of plain MQTT."""
        if shutil.which("mosquitto") is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
        self.directory = directory
        self.site = site
        self.hub_user = hub_user
        self.users = {hub_user: "hub-secret", **{gate: f"{gate}-secret" for gate in gates or []}}
        self.port = free_port()
        self.host = HOST
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").mkdir(exist_ok=True)
        write_password_file(directory / "passwd", self.users)
        (directory / "acl").write_text(acl_text(site, hub_user), encoding="utf-8")
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"max_packet_size {MAX_PACKET_BYTES}",
            f"password_file {directory / 'passwd'}",
            f"acl_file {directory / 'acl'}",
            "persistence true",
            f"persistence_location {directory / 'data'}/",
            "autosave_interval 3600",
            f"max_queued_messages {max_queued}",
            f"max_inflight_messages {max_inflight}",
            "set_tcp_nodelay true",  # without it Nagle holds small messages ~40 ms at each broker hop
            f"log_dest file {directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            f"listener {self.port} {HOST}",
            # a listener option, so after `listener`; as deploy/mosquitto/mosquitto.conf: the client
            # id is the login, so no login can take over another client's session
            "use_username_as_clientid true",
        ]
        if tls is not None:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to 'mosquitto', who cannot read a 0700 tmp dir
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def password(self, user: str) -> str:
        return self.users[user]

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            raise BrokerError("broker already running")
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.process.returncode}: {self.process.stderr.read().decode(errors='replace')} {self.log()[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)  # polling interval of the readiness check, not a synchronisation
        self.stop()
        raise BrokerError(f"mosquitto did not accept connections on {HOST}:{self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait: mosquitto writes its persistence file on the way out."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: what is not yet autosaved is lost, as in a power cut."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


class StartedBrokers:
    """The brokers one test or benchmark starts, each in its own folder under ``directory``;
    :meth:`close` stops them all (a fixture's teardown)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Broker] = []

    def start(self, prepare: Callable[[Broker], None] | None = None, **options: object) -> Broker:
        """A started ``Broker(**options)``; ``prepare`` may rewrite its files before it starts
        (a production mosquitto.conf, a site's own passwd and acl)."""
        broker = Broker(self.directory / f"broker{len(self.started)}", **options)
        if prepare is not None:
            prepare(broker)
        broker.start()
        self.started.append(broker)
        return broker

    def close(self) -> None:
        for broker in self.started:
            broker.stop()
