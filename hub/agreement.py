"""Settings a gate and its hub must share, compared from what each gate says of its own.

A gate sends its heartbeat interval, time zone and the kids of the hub keys
it trusts in every birth and heartbeat (``protocol.gate_messages.GateSettings``).
Each one that differs from the hub's breaks something quietly: a gate that
beats slower than the hub expects is shown silent between beats, a gate in
another zone cuts quota slots and days at other hours, and a gate that trusts
another hub key ignores every message of this hub. ``disagreements`` is pure
and shared by the hub's log (``SettingsWatch``), ``lungta hub gates`` and the
console, so all three say the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from protocol.gate_messages import GateSettings, decode_gate_settings
from protocol.messages import MalformedMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Disagreement:
    """One setting whose gate value is not the hub's."""

    key: str
    gate_value: str
    hub_value: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "gate_value": self.gate_value, "hub_value": self.hub_value}

    def __str__(self) -> str:
        return f"{self.key} {self.gate_value} (hub {self.hub_value})"


def hub_settings(heartbeat_interval_s: float, timezone: str, hub_kid: bytes | None) -> GateSettings:
    """The hub's side, in the gate's terms; ``hub_kid`` None when the hub key is not at hand (then not compared)."""
    return GateSettings(float(heartbeat_interval_s), timezone, () if hub_kid is None else (hub_kid.hex(),))


def disagreements(claimed: GateSettings | None, hub: GateSettings) -> tuple[Disagreement, ...]:
    """What differs; nothing for a gate too old to say (its silence is not a disagreement)."""
    if claimed is None:
        return ()
    found = []
    if claimed.heartbeat_s != hub.heartbeat_s:
        found.append(Disagreement("heartbeat_s", _number(claimed.heartbeat_s), _number(hub.heartbeat_s)))
    if claimed.timezone != hub.timezone:
        found.append(Disagreement("timezone", claimed.timezone, hub.timezone))
    if hub.hub_kids and not set(hub.hub_kids) & set(claimed.hub_kids):
        found.append(Disagreement("hub_key", ",".join(claimed.hub_kids) or "none", hub.hub_kids[0]))
    return tuple(found)


def stored_disagreements(fields: Mapping[str, object], hub: GateSettings) -> tuple[Disagreement, ...]:
    """The same from a gate's stored heartbeat (or birth) fields, as the operator's views read them."""
    try:
        return disagreements(decode_gate_settings(fields), hub)
    except MalformedMessage:
        return ()  # the hub refused such a report at intake: nothing stored can be malformed


def _number(value: float) -> str:
    return f"{value:g}"


class SettingsWatch:
    """Logs each gate's disagreements when they change: one WARNING per setting that starts to differ, one INFO when all agree again."""

    def __init__(self, hub: GateSettings) -> None:
        self.hub = hub
        self._seen: dict[str, tuple[Disagreement, ...]] = {}

    def note(self, gate: str, claimed: GateSettings | None) -> tuple[Disagreement, ...]:
        found = disagreements(claimed, self.hub)
        before = self._seen.get(gate, ())
        if found == before:
            return found
        self._seen[gate] = found
        for item in found:
            if item not in before:
                log.warning("gate settings disagree with the hub's: gate=%s key=%s gate_value=%s hub_value=%s", gate, item.key, item.gate_value, item.hub_value)
        if before and not found:
            log.info("gate settings agree with the hub's again: gate=%s", gate)
        return found
