"""The hub with a pinned site root: a recorded trust list is verified again, used for the hub's own ticket
checks, kept retained at a real broker for gates that come later, and adopted again at the next start."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from hub.console.actions import PublishTrustList
from hub.service import HubService
from lungta.config import load_hub_config
from lungta.console_cli import cli_perform
from protocol.errors import UnknownKey
from protocol.keys import kid_for, write_key_pair
from protocol.topics import trust_topic
from protocol.trust import TrustedKey
from protocol.trustlist import new_trust_list, sign_trust_list
from tests.hub.conftest import TIMEOUT, start_hub, write_hub_config


def _first_trust_message(broker, gate: str) -> mqtt.MQTTMessage:
    """What a gate newly subscribing to the trust topic receives first (as the ACL lets a gate read it)."""
    received: list[mqtt.MQTTMessage] = []
    arrived = threading.Event()

    def on_message(client, userdata, message) -> None:
        received.append(message)
        arrived.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gate, protocol=mqtt.MQTTv5)
    client.username_pw_set(gate, broker.password(gate))
    client.on_message = on_message
    client.on_connect = lambda client, *_: client.subscribe(trust_topic(broker.site), qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert arrived.wait(TIMEOUT), "no trust list on the trust topic"
    finally:
        client.disconnect()
        client.loop_stop()
    return received[0]


@pytest.fixture
def root(tmp_path: Path) -> tuple[SigningKey, Path]:
    key = SigningKey.generate()
    return key, write_key_pair(key, tmp_path / "root", "site-root")[1]


def test_a_published_list_is_used_by_the_hub_retained_for_later_gates_and_adopted_at_restart(tmp_path, broker, hub_key, issuer_key, root) -> None:
    root_key, root_pub = root
    sales2 = SigningKey.generate()
    config_path = write_hub_config(tmp_path / "hub", broker, hub_key, site_root=str(root_pub))
    running = start_hub(config_path)
    try:
        assert running.service.trust_lists is not None and running.service.trust_lists.current is None
        signed = sign_trust_list(new_trust_list(broker.site, 1, int(time.time()), [TrustedKey("sales2", sales2.verify_key)]), root_key)
        cli_perform(running.config, PublishTrustList(signed))
        assert _first_trust_message(broker, "g1").payload == signed
        later = _first_trust_message(broker, "g2")  # a gate connecting afterwards: the broker kept it
        assert later.retain and later.payload == signed
        trust = running.service.checker.trust
        assert trust.key_for(kid_for(sales2.verify_key), int(time.time())).name == "sales2"
        with pytest.raises(UnknownKey):
            trust.key_for(kid_for(issuer_key.verify_key), int(time.time()))
    finally:
        running.stop()
    again = HubService.from_config(load_hub_config(config_path))
    try:
        assert again.trust_lists is not None and again.trust_lists.current is not None and again.trust_lists.current.version == 1
        assert again.checker.trust is not None and len(again.checker.trust) == 1
    finally:
        again.store.close()
        again.trust_lists.close()


def test_a_hub_without_a_pinned_root_has_no_trust_lists(hub) -> None:
    assert hub.service.trust_lists is None
