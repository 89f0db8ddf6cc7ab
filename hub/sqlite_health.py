"""What the hub knows of each gate's health, and its history (hub/sqlite_store.py)."""

from __future__ import annotations

from protocol.cbor import decode_exactly, encode
from protocol.gate_messages import HealthReport

from .sqlite_events import EventTables
from .sqlite_tables import HubStoreError
from .store import GateHealth, HubLiveness

GATE_COLUMNS = "gate, online, bdseq, last_seen_ms, born_ms, died_ms, birth, heartbeat, incarnation, resets, reset_ms, refused"


def _cbor(blob: bytes | None) -> dict:
    value = decode_exactly(blob, "stored map", allow_floats=True) if blob else {}  # heartbeats carry temperature_c
    if not isinstance(value, dict):
        raise HubStoreError(f"a stored map is a {type(value).__name__}: the hub database was changed by something else")
    return value


class HealthTables(EventTables):
    """Tables gates and gate_history; a gate's acknowledged seq comes from its event stream."""

    def gate_health(self, gate: str) -> GateHealth | None:
        row = self._db.execute(f"SELECT {GATE_COLUMNS} FROM gates WHERE gate = ?", (gate,)).fetchone()
        return self._health(row) if row else None

    def _health(self, row: tuple) -> GateHealth:
        gate, online, bdseq, last_seen, born, died, birth, heartbeat, incarnation, resets, reset_ms, refused = row
        acked = self.contiguous_seq(gate, incarnation) if incarnation else 0
        return GateHealth(gate, bool(online), bdseq, last_seen, born, died, _cbor(birth), _cbor(heartbeat), acked, incarnation, resets, reset_ms, refused)

    def save_health(self, health: GateHealth, report: HealthReport, received_ms: int) -> None:
        with self.transaction():
            self._db.execute(
                f"INSERT OR REPLACE INTO gates ({GATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (health.gate, int(health.online), health.bdseq, health.last_seen_ms, health.born_ms, health.died_ms, encode(dict(health.birth)), encode(dict(health.heartbeat)),
                 health.incarnation, health.resets, health.reset_ms, health.refused),
            )
            self._db.execute("INSERT INTO gate_history (gate, kind, received_ms, fields) VALUES (?, ?, ?, ?)", (health.gate, report.kind.value, received_ms, encode(dict(report.fields))))

    def _touch_gate(self, gate: str, now_ms: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO gates (gate, online, last_seen_ms) VALUES (?, 0, ?)", (gate, now_ms))

    def record_reset(self, gate: str, now_ms: int) -> None:
        with self.transaction():
            self._touch_gate(gate, now_ms)
            self._db.execute("UPDATE gates SET resets = resets + 1, reset_ms = ? WHERE gate = ?", (now_ms, gate))

    def count_refused(self, counts: dict[str, int], now_ms: int) -> None:
        with self.transaction():
            for gate, count in counts.items():
                self._touch_gate(gate, now_ms)
                self._db.execute("UPDATE gates SET refused = refused + ? WHERE gate = ?", (count, gate))

    def note_hub_alive(self, now_ms: int, running: bool, broker_up: bool) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO hub_liveness VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms, running = excluded.running,"
                " broker_since_ms = CASE WHEN broker_up = excluded.broker_up THEN broker_since_ms ELSE excluded.broker_since_ms END, broker_up = excluded.broker_up",
                (now_ms, int(running), int(broker_up), now_ms),
            )

    def hub_liveness(self) -> HubLiveness | None:
        row = self._db.execute("SELECT seen_ms, running, broker_up, broker_since_ms FROM hub_liveness").fetchone()
        return HubLiveness(row[0], bool(row[1]), bool(row[2]), row[3]) if row else None

    def gates(self) -> list[GateHealth]:
        rows = self._db.execute(f"SELECT {GATE_COLUMNS} FROM gates ORDER BY gate").fetchall()
        return [self._health(row) for row in rows]

    def history(self, gate: str, limit: int) -> list[tuple[int, str, dict]]:
        rows = self._db.execute("SELECT received_ms, kind, fields FROM gate_history WHERE gate = ? ORDER BY id DESC LIMIT ?", (gate, limit))
        return [(received, kind, _cbor(fields)) for received, kind, fields in rows]
