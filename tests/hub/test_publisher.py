"""The hub's publisher with a link that is down: asking after a message paho could not send
must not stop the hub's worker (paho raises there), and the row goes out again once the
link is back."""

from __future__ import annotations

import queue

from nacl.signing import SigningKey

from hub.publisher import Publisher
from hub.store import OutboxRow
from transport.mqtt import BrokerConfig, MqttLink
from protocol.topics import USED
from testkit.tickets import SITE


def test_a_row_published_while_the_link_is_down_is_sent_again_once_it_is_up():
    link = MqttLink(BrokerConfig(port=1), [], queue.Queue(), queue.Queue())  # never started: not connected
    publisher = Publisher(link, SigningKey.generate(), SITE)
    row = OutboxRow(1, USED, 1, 0, [])
    assert publisher.publish_rows([row]) == 1
    assert publisher.collect_published() == [] and publisher.in_flight == 1  # no exception, still owed
    link.connected.set()  # the link came back: the lost publish is forgotten, the row goes out again
    assert publisher.collect_published() == [] and publisher.in_flight == 0
    assert publisher.publish_rows([row]) == 1
