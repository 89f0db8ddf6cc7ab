"""Gate health: the birth/death discipline, and the operator's table.

Sparkplug's rule, applied by ``apply_report``: every connection of a gate
carries a birth/death sequence number (``bdseq``) that the gate persists and
increments per connect; its Last Will (the death) carries the same number. A
death or heartbeat with a ``bdseq`` older than the gate's latest birth belongs
to a connection that is already gone and changes nothing, so a late Last Will
(a broker noticing a dead TCP connection after the gate has reconnected) can
never mark a live gate offline.
"""

from __future__ import annotations

from dataclasses import replace

from protocol.gate_messages import GateSettings, HealthReport

from .agreement import stored_disagreements
from .store import GateHealth, HubLiveness

HEARTBEAT_FIELDS = ("version", "rev_seq", "used_seq", "backlog", "clock_offset_ms", "scanner", "relay", "disk_free_mb", "temperature_c", "trust_version")


def apply_report(current: GateHealth | None, gate: str, report: HealthReport, received_ms: int) -> GateHealth | None:
    """The gate's new state after ``report``, or None when the report is stale and changes nothing."""
    state = current or GateHealth(gate, online=False, bdseq=None, last_seen_ms=received_ms)
    newer = state.bdseq is None or report.bdseq is None or report.bdseq > state.bdseq
    same = report.bdseq is not None and report.bdseq == state.bdseq
    if report.bdseq is not None and state.bdseq is not None and report.bdseq < state.bdseq:
        return None
    if report.kind == "birth":
        return replace(state, online=True, bdseq=report.bdseq, last_seen_ms=received_ms, born_ms=received_ms, birth=report.fields, incarnation=report.incarnation or state.incarnation)
    if report.kind == "death":
        if same and not state.online and current is not None:
            return None  # a second copy of the same death
        return replace(state, online=False, bdseq=report.bdseq, died_ms=received_ms)
    online = state.online or (newer and report.bdseq is not None) or current is None
    return replace(state, online=online, bdseq=report.bdseq if report.bdseq is not None else state.bdseq, last_seen_ms=received_ms, heartbeat=report.fields,
                   incarnation=report.incarnation or state.incarnation)


HUB_SILENT_MS = 15_000  # three of the worker's records (hub/service.py ALIVE_EVERY_S) missed


def hub_blind(liveness: HubLiveness | None, now_ms: int) -> str | None:
    """Why the hub cannot see its gates now (not running, stopped, no broker), or None when it can.

    Then a gate that went quiet in the store says nothing of the gate: it may well be
    admitting and refusing offline as it should, so its status is ``unknown``.
    """
    if liveness is None:
        return "the hub has never run on this database"
    if not liveness.running:
        return f"the hub stopped {_age(now_ms, liveness.seen_ms)}"
    if now_ms - liveness.seen_ms > HUB_SILENT_MS:
        return f"the hub last recorded itself running {_age(now_ms, liveness.seen_ms)} (stopped or hung?)"
    if not liveness.broker_up:
        return f"the hub cannot reach the broker (lost it {_age(now_ms, liveness.broker_since_ms)})"
    return None


def status(health: GateHealth, now_ms: int, stale_after_ms: int) -> str:
    if not health.online:
        return "offline"
    return "stale" if now_ms - health.last_seen_ms > stale_after_ms else "online"


def _age(now_ms: int, then_ms: int | None) -> str:
    if then_ms is None:
        return "-"
    seconds = max(0, (now_ms - then_ms) // 1000)
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _or_dash(value: object) -> object:
    return "-" if value is None else value


def _lag(hub_seq: int, gate_seq: object) -> int | str:
    return hub_seq - gate_seq if type(gate_seq) is int else "-"


def settings_column(health: GateHealth, hub: GateSettings | None) -> str:
    """"ok", what differs from the hub's settings, or "-" for a gate too old to say (hub/agreement.py)."""
    fields = health.heartbeat or health.birth or {}
    if hub is None or "heartbeat_s" not in fields:
        return "-"
    return "; ".join(str(item) for item in stored_disagreements(fields, hub)) or "ok"


def gate_row(health: GateHealth, now_ms: int, stale_after_ms: int, revocation_seq: int, used_seq: int, hub: GateSettings | None = None) -> dict[str, object]:
    """One gate as the operator sees it; also the JSON record of ``lungta hub gates --json``.

    ``hub``: the hub's own settings, to show where the gate's differ."""
    beat = health.heartbeat or {}
    settings = settings_column(health, hub)
    return {
        "gate": health.gate,
        "status": status(health, now_ms, stale_after_ms),
        "last_seen": _age(now_ms, health.last_seen_ms),
        "version": beat.get("version", health.birth.get("version", "-")),
        "backlog": beat.get("backlog", "-"),
        "rev_lag": _lag(revocation_seq, beat.get("rev_seq")),
        "used_lag": _lag(used_seq, beat.get("used_seq")),
        "clock_offset_ms": _or_dash(beat.get("clock_offset_ms")),
        "acked_seq": health.acked_seq,
        "bdseq": health.bdseq if health.bdseq is not None else "-",
        "scanner": beat.get("scanner", "-"),
        "relay": beat.get("relay", "-"),
        "trust": _or_dash(beat.get("trust_version")),  # the installed trust list's version (hub/trustlist.py)
        "settings": settings,
        "alert": alert(health, now_ms, settings not in ("ok", "-")),
    }


RESET_ALERT_MS = 24 * 3_600_000


def alert(health: GateHealth, now_ms: int, settings_differ: bool = False) -> str:
    """What the operator must look at: a gate state reset in the last day, refused (invalid) messages,
    settings that differ from the hub's, another client logging in as the gate."""
    alerts = []
    if health.reset_ms is not None and now_ms - health.reset_ms < RESET_ALERT_MS:
        alerts.append(f"gate state reset {_age(now_ms, health.reset_ms)}")
    if health.refused:
        alerts.append(f"{health.refused} invalid message(s)")
    if settings_differ:
        alerts.append("settings differ from the hub's")
    takeovers = (health.heartbeat or {}).get("session_takeovers")
    if type(takeovers) is int and takeovers > 0:
        alerts.append(f"another client logs in as this gate ({takeovers} takeover(s) in the last hour)")
    return "; ".join(alerts) or "-"


def render_table(rows: list[dict[str, object]]) -> str:
    """Fixed-width text columns, headed; an empty site says so."""
    if not rows:
        return "no gate has reported yet"
    columns = list(rows[0])
    cells = [[str(row[column]) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[index]) for line in cells)) for index, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    return "\n".join(lines)
