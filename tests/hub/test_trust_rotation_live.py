"""Issuer key rotation end to end: real Mosquitto, ``lungta hub run``, a ``lungta gate run`` daemon with a serial
scanner on a pty, and the operator's own commands (``lungta site trust sign``, ``lungta hub trust publish``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from hub.sqlite_store import SqliteHubStore
from protocol.keys import write_key_pair
from protocol.topics import trust_topic
from protocol.trust import TrustedKey
from protocol.trustlist import new_trust_list, sign_trust_list
from testkit.live_gate import WatchedProcess, hub_section, lungta, write_gate_config
from testkit.ptys import RawPty
from testkit.tickets import live_ticket
from testkit.waiting import wait_until
from testkit.hub_config import write_hub_config

SECONDS = 15.0  # "within seconds": the list reaches the gate and changes its decisions well inside this


class LiveGate:
    """``lungta gate run`` pinned to the site root, trusting key A from its local file at first."""

    def __init__(self, directory: Path, broker, issuer_pub: Path, hub_pub: Path, root_pub: Path) -> None:
        self.scanner = RawPty()
        self.config = write_gate_config(directory, issuer_pub, self.scanner.port, gate_id="g1", site=broker.site, site_root=root_pub,
                                        sections=hub_section(broker, "g1", hub_pub, catch_up_seconds=1))
        self.process: WatchedProcess | None = None

    def start(self) -> WatchedProcess:
        self.process = WatchedProcess(lungta("--log-level", "INFO", "gate", "run", "--config", str(self.config)), "gate g1")
        self.process.wait_line(f"serial:{self.scanner.port}: open")
        return self.process

    def decide(self, ticket: str) -> str:
        """Scan ``ticket``; the gate's decision line for it."""
        assert self.process is not None
        mark = self.process.mark()
        self.scanner.scan(ticket)
        return self.process.wait_line("decision ", after=mark)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.scanner.close()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(lungta(*args), capture_output=True, text=True, timeout=60)


def _publish_as_hub(broker, payload: bytes) -> None:
    """What a compromised hub (or anybody with its broker login) could put on the trust topic."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.hub_user, protocol=mqtt.MQTTv5)
    client.username_pw_set(broker.hub_user, broker.password(broker.hub_user))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(trust_topic(broker.site), payload, qos=1, retain=True).wait_for_publish(SECONDS)
    finally:
        client.disconnect()
        client.loop_stop()


def _gate_trust_version(database: Path) -> object:
    store = SqliteHubStore(database)
    try:
        return next((health.heartbeat.get("trust_version") for health in store.gates() if health.gate == "g1"), None)
    finally:
        store.close()


def test_a_withdrawn_sales_key_is_refused_at_a_live_gate_within_seconds_even_after_an_offline_restart(tmp_path: Path, make_broker, hub_key: SigningKey) -> None:
    broker = make_broker(["g1"])
    root, key_a, key_b = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    root_key, root_pub = write_key_pair(root, tmp_path / "root", "site-root")
    _, pub_a = write_key_pair(key_a, tmp_path / "issuers", "sales1")
    _, pub_b = write_key_pair(key_b, tmp_path / "issuers", "sales2")
    hub_config = write_hub_config(tmp_path / "hub", broker, hub_key, heartbeat_interval_s=1, site_root=str(root_pub))
    hub = WatchedProcess(lungta("--log-level", "INFO", "hub", "run", "--config", str(hub_config)), "hub")
    gate = LiveGate(tmp_path / "g1", broker, pub_a, tmp_path / "hub" / "keys" / "hub.pub", root_pub)
    try:
        hub.wait_line("subscribed to")
        gate.start()
        assert "decision grant valid" in gate.decide(live_ticket(key_a))
        assert "decision deny unknown_key" in gate.decide(live_ticket(key_b))  # B is not trusted yet

        signed = _run("site", "trust", "sign", "--root", str(root_key), "--site", broker.site, "--add", str(pub_b), "--out", str(tmp_path / "trust-list.cose"))
        assert signed.returncode == 0, signed.stderr
        mark = gate.process.mark()
        published_at = time.monotonic()
        published = _run("hub", "trust", "publish", str(tmp_path / "trust-list.cose"), "--config", str(hub_config))
        assert published.returncode == 0, published.stderr
        gate.process.wait_line("trust list installed version=1 source=hub", timeout=SECONDS, after=mark)
        print(f"trust list reached the gate {time.monotonic() - published_at:.2f} s after 'lungta hub trust publish' started")
        assert "decision deny unknown_key" in gate.decide(live_ticket(key_a))
        assert "decision grant valid" in gate.decide(live_ticket(key_b))
        assert time.monotonic() - published_at < SECONDS
        hub.wait_line("trust list in use version=1")
        wait_until(lambda: _gate_trust_version(tmp_path / "hub" / "hub.db") == 1, "the heartbeat reporting trust list version 1 at the hub", SECONDS)

        # offline restart: the broker is down, the gate decides with the list it kept
        gate.process.stop()
        broker.stop()
        restarted = gate.start()
        restarted.wait_line("trust list installed version=1 source=state")
        assert "decision deny unknown_key" in gate.decide(live_ticket(key_a))
        assert "decision grant valid" in gate.decide(live_ticket(key_b))

        # back online, the hub away: a forged list (another root) and a re-signed stale one are dropped
        hub.stop()
        mark = restarted.mark()
        broker.start()
        restarted.wait_line("subscribed to", after=mark)
        impostor = SigningKey.generate()
        _publish_as_hub(broker, sign_trust_list(new_trust_list(broker.site, 9, int(time.time()), [TrustedKey("sales1", key_a.verify_key)]), impostor))
        restarted.wait_line("trust list refused source=hub reason=bad_signature", after=mark)
        _publish_as_hub(broker, sign_trust_list(new_trust_list(broker.site, 1, int(time.time()) + 1, [TrustedKey("sales1", key_a.verify_key)]), root))
        restarted.wait_line("trust list refused source=hub reason=stale", after=mark)
        assert "decision deny unknown_key" in gate.decide(live_ticket(key_a))
    finally:
        gate.close()
        hub.stop()
