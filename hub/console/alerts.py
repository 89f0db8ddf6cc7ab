"""What needs an operator's attention, from the gates' current view.

``conditions`` is pure: one gate's view in, the alert kinds that hold now
out. ``AlertBook`` (owned by the live feed) remembers since when each holds,
raises the ones that held long enough (some at once, some after a grace so a
lag that clears in a second is no alarm), and attaches acknowledgements. An
alert's id names its occurrence (kind, gate, since), so a condition that
clears and returns is a new, unacknowledged alert.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

from .settings import HttpSettings


class AlertKind(enum.StrEnum):
    BROKER_UNREACHABLE = "broker_unreachable"
    GATE_OFFLINE = "gate_offline"
    GATE_STALE = "gate_stale"
    SCANNER_DOWN = "scanner_down"
    RELAY_ERROR = "relay_error"
    EMERGENCY_ON = "emergency_on"
    CLOCK_OFFSET = "clock_offset"
    REVOCATION_LAG = "revocation_lag"
    USED_LAG = "used_lag"
    BACKLOG = "backlog_growing"
    DISK_LOW = "disk_low"
    STATE_RESET = "gate_state_reset"
    FLAGGED = "flagged_admissions"
    SETTINGS_MISMATCH = "settings_mismatch"
    TRUST_BEHIND = "trust_list_behind"
    GATE_TAKEN_OVER = "session_taken_over"
    HUB_TAKEN_OVER = "hub_session_taken_over"


SEVERITY = {
    AlertKind.BROKER_UNREACHABLE: "critical", AlertKind.GATE_OFFLINE: "critical", AlertKind.RELAY_ERROR: "critical",
    AlertKind.EMERGENCY_ON: "critical", AlertKind.SCANNER_DOWN: "warning", AlertKind.GATE_STALE: "warning",
    AlertKind.CLOCK_OFFSET: "warning", AlertKind.REVOCATION_LAG: "warning", AlertKind.USED_LAG: "warning",
    AlertKind.BACKLOG: "warning", AlertKind.DISK_LOW: "warning", AlertKind.STATE_RESET: "warning", AlertKind.FLAGGED: "info",
    AlertKind.SETTINGS_MISMATCH: "warning", AlertKind.TRUST_BEHIND: "warning", AlertKind.GATE_TAKEN_OVER: "critical", AlertKind.HUB_TAKEN_OVER: "critical",
}
# kinds that only count once they have held for ``offline_alert_s`` (they clear by themselves in normal operation)
NEEDS_GRACE = {AlertKind.GATE_STALE, AlertKind.REVOCATION_LAG, AlertKind.USED_LAG, AlertKind.BACKLOG, AlertKind.TRUST_BEHIND}


@dataclass(frozen=True)
class Alert:
    id: str
    kind: AlertKind
    severity: str
    gate: str | None
    since_ms: int
    message: str
    acknowledged_by: str | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind.value}


def _number(value: object) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def conditions(gate: dict, settings: HttpSettings) -> list[tuple[AlertKind, str]]:
    """The alert kinds one gate's view shows now, each with a line for the operator."""
    found: list[tuple[AlertKind, str]] = []
    status = gate["status"]
    if status == "offline":
        found.append((AlertKind.GATE_OFFLINE, f"gate {gate['gate']} is offline ({gate.get('cause') or 'disconnected'})"))
    elif status == "stale":
        found.append((AlertKind.GATE_STALE, f"gate {gate['gate']} has sent nothing for {settings.offline_alert_s:.0f} s or more"))
    mismatch = gate.get("settings_mismatch") or []  # settings hold while it is away too
    if mismatch:  # hub/agreement.py: the gate's own heartbeat interval, time zone or trusted hub key differ from the hub's
        differ = ", ".join(f"{item['key']} {item['gate_value']} (hub {item['hub_value']})" for item in mismatch)
        found.append((AlertKind.SETTINGS_MISMATCH, f"gate {gate['gate']} settings differ from the hub's: {differ}"))
    takeovers = _number(gate.get("session_takeovers"))
    if takeovers:
        found.append((AlertKind.GATE_TAKEN_OVER, f"gate {gate['gate']}: another client logged in as this gate {takeovers:.0f} time(s) in the last hour"
                                                 " (two gates with one gate id, or a copied gate.toml and password)"))
    if status != "online":
        return found  # device figures are from the last heartbeat: not news
    scanner, relay = gate.get("scanner"), gate.get("relay")
    if isinstance(scanner, str) and scanner not in ("ok", "none"):
        found.append((AlertKind.SCANNER_DOWN, f"gate {gate['gate']} scanner: {scanner}"))
    if relay == "fault":
        found.append((AlertKind.RELAY_ERROR, f"gate {gate['gate']} relay or passage sensor fault"))
    if gate.get("emergency"):
        found.append((AlertKind.EMERGENCY_ON, f"gate {gate['gate']} is in emergency open ({relay})"))
    offset = _number(gate.get("clock_offset_ms"))
    if offset is not None and abs(offset) > settings.clock_offset_alert_ms:
        found.append((AlertKind.CLOCK_OFFSET, f"gate {gate['gate']} clock is {offset / 1000:+.1f} s from the hub's"))
    for key, kind, what in (("rev_lag", AlertKind.REVOCATION_LAG, "revocation"), ("used_lag", AlertKind.USED_LAG, "used-mark")):
        lag = _number(gate.get(key))
        if lag is not None and settings.lag_alert and lag >= settings.lag_alert:
            found.append((kind, f"gate {gate['gate']} is {lag:.0f} {what} update(s) behind"))
    trust_head, trust_version = gate.get("trust_head"), gate.get("trust_version")
    if isinstance(trust_head, int) and not (isinstance(trust_version, int) and trust_version >= trust_head):
        held = f"trust list version {trust_version}" if isinstance(trust_version, int) else "no trust list (its own trust file)"
        found.append((AlertKind.TRUST_BEHIND, f"gate {gate['gate']} holds {held}, the hub's is version {trust_head}:"
                                              " an issuer key withdrawn since may still be trusted there (is site_root pinned in its gate.toml?)"))
    backlog = _number(gate.get("backlog"))
    if backlog is not None and backlog >= settings.backlog_alert > 0:
        found.append((AlertKind.BACKLOG, f"gate {gate['gate']} holds {backlog:.0f} events the hub has not acknowledged"))
    elif backlog is not None and gate.get("backlog_low") is not None and backlog > gate["backlog_low"]:
        found.append((AlertKind.BACKLOG, f"gate {gate['gate']} backlog is growing: {backlog:.0f} events unacknowledged, up from {gate['backlog_low']}"))
    disk = _number(gate.get("disk_free_mb"))
    if disk is not None and disk < settings.disk_low_mb:
        found.append((AlertKind.DISK_LOW, f"gate {gate['gate']} has {disk:.0f} MB of disk left"))
    if gate.get("state_reset"):  # the hub's record (GateHealth.resets/reset_ms): it told the gate its state went backwards
        found.append((AlertKind.STATE_RESET, f"gate {gate['gate']} state was reset {gate.get('resets')} time(s), last at {gate.get('reset_ms')} ms:"
                                             " its state went backwards (wiped or restored) and its local history is gone"))
    if gate.get("flagged_today"):
        found.append((AlertKind.FLAGGED, f"gate {gate['gate']} admitted {gate['flagged_today']} flagged ticket(s) today (offline or untrusted clock)"))
    return found


class BacklogWatch:
    """Each gate's backlog since it last went down: the low point a growing backlog is measured from.

    A gate whose events the hub acknowledges shows a backlog that rises and
    falls between heartbeats; one that never falls, from a low point, is
    sending into a hub that does not acknowledge (the alert after the grace).
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}  # gate -> (last backlog, low point)

    def low_point(self, gate: str, backlog: object) -> int | None:
        """The low point to compare ``backlog`` with; None when the gate reports none."""
        if not isinstance(backlog, int) or isinstance(backlog, bool):
            self._seen.pop(gate, None)
            return None
        last, low = self._seen.get(gate, (backlog, backlog))
        if backlog < last:
            low = backlog
        self._seen[gate] = (backlog, low)
        return low


class AlertBook:
    """Since when each condition holds; which ones are raised. Used by the live feed's thread only."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._since: dict[tuple[AlertKind, str | None], int] = {}
        self._found: dict[str, tuple[dict, list[tuple[AlertKind, str]]]] = {}  # per gate: the view last looked at, and what it showed
        self._backlog = BacklogWatch()

    def update(self, gates: list[dict], broker_up: bool, now_ms: int, acks: dict[str, tuple[str, int]], hub_takeovers: int = 0) -> list[Alert]:
        """``hub_takeovers``: how often another client took over the hub's own broker session in the last hour."""
        holding: dict[tuple[AlertKind, str | None], str] = {}
        if hub_takeovers:
            holding[AlertKind.HUB_TAKEN_OVER, None] = (f"another client logged in as this hub {hub_takeovers} time(s) in the last hour:"
                                                       " a second hub for this site runs somewhere (the two knock each other off the broker)")
        if not broker_up:
            holding[AlertKind.BROKER_UNREACHABLE, None] = "the hub cannot reach the MQTT broker: gate states are unknown (gates keep deciding offline)"
        else:
            found = {}
            for gate in gates:
                held = self._found.get(gate["gate"])
                if held is not None and held[0] is gate:  # the feed reuses unchanged views: same heartbeat, same conditions
                    shown = held[1]
                else:
                    low = self._backlog.low_point(gate["gate"], gate.get("backlog") if gate["status"] == "online" else None)
                    shown = conditions({**gate, "backlog_low": low}, self.settings)
                found[gate["gate"]] = (gate, shown)
                for kind, message in shown:
                    holding[kind, gate["gate"]] = message
            self._found = found
        self._since = {key: self._since.get(key, now_ms) for key in holding}
        grace_ms = int(self.settings.offline_alert_s * 1000)
        raised = []
        for (kind, gate_id), message in holding.items():
            since = self._since[kind, gate_id]
            if kind in NEEDS_GRACE and now_ms - since < grace_ms:
                continue
            alert_id = f"{kind.value}:{gate_id or 'site'}:{since}"
            ack = acks.get(alert_id)
            raised.append(Alert(alert_id, kind, SEVERITY[kind], gate_id, since, message, ack[0] if ack else None))
        order = {"critical": 0, "warning": 1, "info": 2}
        return sorted(raised, key=lambda a: (a.acknowledged_by is not None, order[a.severity], a.gate or "", a.kind.value))
