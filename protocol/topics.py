"""The MQTT topic layout of one site, shared by the hub and the gates.

Hub to gates (written only by the hub's broker identity)::

    lungta/<site>/hub/revocations          signed revocation deltas, site-wide seq
    lungta/<site>/hub/used                 signed used marks, site-wide seq
    lungta/<site>/hub/ack/<gate>           signed event acknowledgements
    lungta/<site>/hub/snapshot/<gate>      signed snapshot chunks
    lungta/<site>/hub/command/<gate>       signed commands
    lungta/<site>/hub/quota/<gate>         signed quota leases
    lungta/<site>/hub/pong/<gate>          signed answers to the gate's pings
    lungta/<site>/hub/trust                the site's trust list (retained; signed by the site root, protocol/trustlist.py)

Gates to hub (each gate writes only below its own ``gate/<gate>/``)::

    lungta/<site>/gate/<gate>/birth | death | heartbeat | ping | events | request

A hub stream name is the topic suffix after ``hub/``, so the stream a signed
message claims can be checked against the topic it arrived on. Site and gate
names are restricted to letters, digits, ``_`` and ``-`` so that they are one
topic level, never contain MQTT wildcards, and can stand for ``%u`` in a
Mosquitto ACL pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "lungta"
REVOCATIONS = "revocations"
USED = "used"
ACK = "ack"
SNAPSHOT = "snapshot"
COMMAND = "command"
QUOTA = "quota"
PONG = "pong"
TRUST = "trust"  # not a hub stream: the root-signed trust list, retained, carries its own version
SITE_STREAMS = (REVOCATIONS, USED)
GATE_STREAM_KINDS = (ACK, SNAPSHOT, COMMAND, QUOTA, PONG)

BIRTH = "birth"
DEATH = "death"
HEARTBEAT = "heartbeat"
PING = "ping"
EVENTS = "events"
REQUEST = "request"
GATE_KINDS = (BIRTH, DEATH, HEARTBEAT, PING, EVENTS, REQUEST)

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TopicError(ValueError):
    """A name or topic outside the Lungta layout."""


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it can be a site or gate id (any value is checked, decoded ones too), else raise TopicError naming ``what``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TopicError(f"{what} {name!r} must be 1-64 letters, digits, '_' or '-'")
    return name


def gate_stream(kind: str, gate: str) -> str:
    """The per-gate hub stream name, e.g. ``ack/G``."""
    if kind not in GATE_STREAM_KINDS:
        raise TopicError(f"{kind!r} is not a per-gate stream ({', '.join(GATE_STREAM_KINDS)})")
    return f"{kind}/{check_name(gate, 'gate')}"


def ack_stream(gate: str) -> str:
    return gate_stream(ACK, gate)


def snapshot_stream(gate: str) -> str:
    return gate_stream(SNAPSHOT, gate)


def command_stream(gate: str) -> str:
    return gate_stream(COMMAND, gate)


def quota_stream(gate: str) -> str:
    return gate_stream(QUOTA, gate)


def pong_stream(gate: str) -> str:
    return gate_stream(PONG, gate)


def check_stream(stream: str) -> str:
    """Return ``stream`` if it is a valid hub stream name, else raise TopicError."""
    if stream in SITE_STREAMS:
        return stream
    kind, _, gate = stream.partition("/")
    gate_stream(kind, gate)
    return stream


def hub_topic(site: str, stream: str) -> str:
    """Where the hub publishes ``stream``: ``lungta/<site>/hub/<stream>``."""
    return f"{ROOT}/{check_name(site, 'site')}/hub/{check_stream(stream)}"


def gate_topic(site: str, gate: str, kind: str) -> str:
    """Where a gate publishes ``kind``: ``lungta/<site>/gate/<gate>/<kind>``."""
    if kind not in GATE_KINDS:
        raise TopicError(f"{kind!r} is not a gate message kind ({', '.join(GATE_KINDS)})")
    return f"{ROOT}/{check_name(site, 'site')}/gate/{check_name(gate, 'gate')}/{kind}"


@dataclass(frozen=True)
class GateTopic:
    site: str
    gate: str
    kind: str


def parse_gate_topic(topic: str) -> GateTopic:
    """Split a gate-to-hub topic; anything else raises TopicError."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[2] != "gate" or parts[4] not in GATE_KINDS:
        raise TopicError(f"{topic!r} is not a lungta/<site>/gate/<gate>/<kind> topic")
    return GateTopic(check_name(parts[1], "site"), check_name(parts[3], "gate"), parts[4])


def stream_of_hub_topic(site: str, topic: str) -> str:
    """The stream a hub-to-gate topic carries; raises TopicError for any other topic."""
    prefix = f"{ROOT}/{check_name(site, 'site')}/hub/"
    if not topic.startswith(prefix):
        raise TopicError(f"{topic!r} is not below {prefix}")
    return check_stream(topic[len(prefix):])


def hub_subscription(site: str) -> str:
    """The one filter the hub subscribes to: every gate message of the site."""
    return f"{ROOT}/{check_name(site, 'site')}/gate/+/+"


def trust_topic(site: str) -> str:
    """Where the hub keeps the site's trust list, retained: ``lungta/<site>/hub/trust``."""
    return f"{ROOT}/{check_name(site, 'site')}/hub/{TRUST}"


def gate_subscriptions(site: str, gate: str) -> list[str]:
    """The filters a gate subscribes to: the site streams, the trust list and its own streams."""
    check_name(gate, "gate")
    return [hub_topic(site, REVOCATIONS), hub_topic(site, USED), trust_topic(site), f"{ROOT}/{site}/hub/+/{gate}"]


def gate_client_id(site: str, gate: str) -> str:
    """The fixed MQTT client id of a gate; fixed so its persistent session survives restarts."""
    return f"lungta-{check_name(site, 'site')}-{check_name(gate, 'gate')}"
