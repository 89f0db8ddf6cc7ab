"""Signing and publishing hub messages, and knowing when the broker has them.

Outbox rows (revocations, used marks, commands) are durable: they count as
published only once the broker's PUBACK has arrived, and anything
unacknowledged when the hub stops is published again at the next start (a
gate refuses the second copy as a replay, so that is harmless). Acks and
snapshot chunks are derived from the store and regenerated on demand, so
they are not tracked. Completion is read from each publish's own
``MQTTMessageInfo`` rather than by mid, because paho reuses a mid as soon as
its PUBACK is in, before the worker has seen it.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from nacl.signing import SigningKey

from protocol.hub_messages import sign_message
from transport.mqtt import MqttLink
from protocol.topics import hub_topic

from .store import OutboxRow


class Publisher:
    """Not thread-safe: one instance per thread (the worker's; the snapshot builder has its own). The link is shared (paho's publish is thread-safe)."""

    def __init__(self, link: MqttLink, key: SigningKey, site: str) -> None:
        self._link = link
        self._key = key
        self._site = site
        self._pending: dict[int, mqtt.MQTTMessageInfo] = {}
        self.heads: dict[str, int] = {}  # highest seq handed to the broker per stream: what a pong reports

    def publish(self, stream: str, seq: int, at_ms: int, body: object) -> mqtt.MQTTMessageInfo:
        """Sign and publish one message at QoS 1."""
        payload = sign_message(stream, seq, at_ms, body, self._key, site=self._site)
        info = self._link.publish(hub_topic(self._site, stream), payload)
        self.heads[stream] = max(self.heads.get(stream, 0), seq)
        return info

    def publish_rows(self, rows: list[OutboxRow]) -> int:
        """Publish outbox rows not already in flight; returns how many were sent."""
        sent = 0
        for row in rows:
            if row.row_id not in self._pending:
                self._pending[row.row_id] = self.publish(row.stream, row.seq, row.at_ms, row.body)
                sent += 1
        return sent

    def collect_published(self) -> list[int]:
        """Row ids whose PUBACK has arrived since the last call.

        A row published while the link was down has an info that can never
        say (paho raises when asked); once the link is up again it is
        forgotten here, so the next pass publishes the row again. A gate
        refuses a second copy as a replay.
        """
        done, lost = [], []
        for row_id, info in self._pending.items():
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
                if info.is_published():
                    done.append(row_id)
            elif self._link.connected.is_set():
                lost.append(row_id)
        for row_id in done + lost:
            del self._pending[row_id]
        return done

    @property
    def in_flight(self) -> int:
        return len(self._pending)
