"""GET routes: gates, revocations, quotas, tickets, events, reports, alerts, audit, accounts.

Gate figures come from the live feed's snapshot (the same numbers the
dashboard and /metrics show); everything else is a query on a pooled store.
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources


from ..quota import QuotaError
from ..quota_text import gate_row as lease_row, parse_day, parse_slot, slot_row
from ..service import gate_slots, online_gates
from . import queries
from .roles import PERMISSIONS, Permission, Principal
from .web import Console, HttpError, Param, Request, Response, Route, error_response, json_response, query_int

GATE_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
MISMATCH = {"type": "object", "required": ["key", "gate_value", "hub_value"], "properties": {
    "key": {"type": "string", "enum": ["heartbeat_s", "timezone", "hub_key"]}, "gate_value": {"type": "string"}, "hub_value": {"type": "string"}}}
GATE_VIEW = {"type": "object", "required": ["gate", "status", "settings_mismatch", "history"], "properties": {
    "gate": GATE_ID, "status": {"type": "string", "enum": ["online", "offline", "stale", "unknown"]},
    "trust_version": {"type": ["integer", "null"], "description": "the trust list of issuer keys this gate has installed; null: only its own trust file"},
    "trust_head": {"type": ["integer", "null"], "description": "the hub's newest trust list; a gate below it raises trust_list_behind"},
    "settings_mismatch": {"type": "array", "items": MISMATCH, "description": "settings the gate runs with that differ from the hub's (hub/agreement.py); empty when they agree or the gate does not say"},
    "session_takeovers": {"type": ["integer", "null"], "description": "times another client logged in as this gate in the last hour, per its heartbeat"},
    "history": {"type": "array", "items": {"type": "object"}}}}
DAY = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": queries.EVENT_PAGE_MAX}, "rows per page")
LIST = {"type": "object", "properties": {"items": {"type": "array"}}, "required": ["items"]}


def me(console: Console, request: Request, who: Principal | None) -> Response:
    assert who is not None
    return json_response({"name": who.name, "role": who.role.value, "via": who.kind, "permissions": sorted(p.value for p in PERMISSIONS[who.role])})


def catalogue(console: Console, request: Request, who: Principal | None) -> Response:
    """The gates' visitor messages per reason (bo, zh, en): the dashboard's reason texts, in the gates' own words."""
    return json_response(reason_texts())


@functools.cache
def reason_texts() -> dict:
    # a data file shipped with the gate package (package_data), read as data: no gate code is imported
    return tomllib.loads(resources.files("gate").joinpath("messages.toml").read_text(encoding="utf-8"))


def snapshot(console: Console, request: Request, who: Principal | None) -> Response:
    snap = console.feed.snapshot
    return json_response({"version": snap.version, "at_ms": snap.at_ms, **snap.data})


def gates(console: Console, request: Request, who: Principal | None) -> Response:
    snap = console.feed.snapshot.data
    return json_response({"items": snap.get("gates", []), "broker_up": snap.get("broker_up"), "at_ms": console.feed.snapshot.at_ms})


def gate(console: Console, request: Request, who: Principal | None) -> Response:
    name = request.params["gate"]
    found = next((view for view in console.feed.snapshot.data.get("gates", []) if view["gate"] == name), None)
    if found is None:
        return error_response(404, f"no gate {name!r} has reported to this hub")
    with console.pool.borrow() as store:
        history = [{"received_ms": at, "kind": kind, "fields": _jsonable(fields)} for at, kind, fields in store.history(name, 20)]
    return json_response({**found, "history": history})


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def revocations(console: Console, request: Request, who: Principal | None) -> Response:
    limit = query_int(request, "limit", 100, 1, queries.EVENT_PAGE_MAX)
    before = query_int(request, "before", None, 1, 2**62)
    with console.pool.borrow() as store:
        items = queries.revocation_log(store.db, limit or 100, before)
    return json_response({"items": items, "next_before": items[-1]["id"] if len(items) == limit else None})


def _day(text: str | None, console: Console) -> str:
    if text is None:
        return queries.today(console.now_ms(), console.config.timezone)
    try:
        return parse_day(text)
    except QuotaError as error:
        raise HttpError(422, str(error)) from None


def quotas(console: Console, request: Request, who: Principal | None) -> Response:
    day = _day(request.query.get("date"), console)
    skew = console.config.quota_skew_s * 1000
    with console.pool.borrow() as store, store.read_snapshot():
        items = [slot_row(q, store.quota_ledger(q.day, q.slot_start, 0), skew) for q in store.quotas(day, day)]
    return json_response({"date": day, "items": items})


def quota(console: Console, request: Request, who: Principal | None) -> Response:
    day = _day(request.params["date"], console)
    try:
        start, end = parse_slot(request.params["slot"])
    except QuotaError as error:
        raise HttpError(422, str(error)) from None
    now_ms, config = console.now_ms(), console.config
    with console.pool.borrow() as store, store.read_snapshot():
        found = next((q for q in store.quotas(day, day) if (q.slot_start, q.slot_end) == (start, end)), None)
        if found is None:
            return error_response(404, f"no quota is set for {day} {request.params['slot']}")
        online = online_gates(store, now_ms, config.heartbeat_interval_s)
        ledger = gate_slots(store, found, online, 0)
        row = slot_row(found, store.quota_ledger(day, start, 0), config.quota_skew_s * 1000)
    return json_response({**row, "gates": [lease_row(slot, now_ms, config.quota_skew_s * 1000) for slot in ledger]})


def ticket(console: Console, request: Request, who: Principal | None) -> Response:
    text = request.params["ticket_id"]
    try:
        ticket_id = bytes.fromhex(text)
    except ValueError:
        ticket_id = b""
    if not 12 <= len(ticket_id) <= 32:
        raise HttpError(422, f"ticket id {text[:80]!r} is not 12..32 bytes of hex")
    with console.pool.borrow() as store:
        found = [event.as_dict() for event in queries.ticket_events(store.db, ticket_id)]
        revocation = queries.ticket_revocation(store.db, ticket_id)
    admitted = [event for event in found if event["kind"] == "admission"]
    return json_response({"ticket_id": ticket_id.hex(), "used": bool(admitted), "admissions": len(admitted), "events": found, "revocation": revocation})


def _cursor(text: str | None) -> tuple[int, str, int] | None:
    if text is None:
        return None
    at, _, rest = text.partition(":")
    gate_name, _, seq = rest.rpartition(":")
    if not (at.isdigit() and seq.isdigit() and gate_name):
        raise HttpError(422, "before must be the next_before value of the previous page")
    return int(at), gate_name, int(seq)


def events(console: Console, request: Request, who: Principal | None) -> Response:
    limit = query_int(request, "limit", 100, 1, queries.EVENT_PAGE_MAX) or 100
    where = queries.EventFilter(
        request.query.get("gate"), request.query.get("kind"), request.query.get("reason"),
        query_int(request, "since", None, 0, 2**53), query_int(request, "until", None, 0, 2**53),
    )
    with console.pool.borrow() as store:
        rows = queries.events(store.db, where, limit, _cursor(request.query.get("before")))
    last = rows[-1] if len(rows) == limit else None
    return json_response({"items": [row.as_dict() for row in rows], "next_before": f"{last.at_ms}:{last.gate}:{last.seq}" if last else None})


def report(console: Console, request: Request, who: Principal | None) -> Response:
    name = request.params["name"]
    if name not in queries.REPORTS:
        return error_response(404, f"no report {name!r}; reports: {', '.join(queries.REPORTS)}")
    day = _day(request.query.get("date"), console)
    form = request.query.get("format", "json")
    if form not in ("json", "csv"):
        raise HttpError(422, "format must be json or csv")
    with console.pool.borrow() as store:
        rows = queries.report(store.db, name, day, console.config.timezone)
    if form == "csv":
        disposition = ("Content-Disposition", f'attachment; filename="lungta-{console.config.site}-{name}-{day}.csv"')
        return Response(200, queries.as_csv(name, rows).encode("utf-8-sig"), "text/csv; charset=utf-8", (disposition,))
    return json_response({"report": name, "date": day, "items": rows})


def alerts(console: Console, request: Request, who: Principal | None) -> Response:
    return json_response({"items": console.feed.snapshot.data.get("alerts", [])})


def audit(console: Console, request: Request, who: Principal | None) -> Response:
    limit = query_int(request, "limit", 100, 1, queries.EVENT_PAGE_MAX) or 100
    before = query_int(request, "before", 0, 0, 2**62) or 0
    with console.pool.borrow() as store:
        items = [entry.as_dict() for entry in store.audit_entries(before, limit, newest_first=True)]
    return json_response({"items": items, "next_before": items[-1]["seq"] if len(items) == limit else None})


def accounts(console: Console, request: Request, who: Principal | None) -> Response:
    with console.pool.borrow() as store:
        return json_response({"items": store.accounts(), "tokens": store.tokens()})



READ = Permission.READ
ROUTES = [
    Route("GET", "/api/v1/me", Permission.SESSION, me, "who the credentials belong to, and what they may do"),
    Route("GET", "/api/v1/catalogue", READ, catalogue, "reason texts in Tibetan, Chinese and English (the gates' catalogue)"),
    Route("GET", "/api/v1/snapshot", READ, snapshot, "the live view: gates, site totals, quotas, alerts (what /api/v1/live pushes)"),
    Route("GET", "/api/v1/gates", READ, gates, "every gate: status, last seen, today's decisions, lags, backlog, clock, devices", result=LIST),
    Route("GET", "/api/v1/gates/{gate}", READ, gate, "one gate, with its last 20 health reports and where its settings differ from the hub's",
          path_schemas={"gate": GATE_ID}, statuses=(200, 404), result=GATE_VIEW),
    Route("GET", "/api/v1/revocations", Permission.REVOCATIONS_READ, revocations, "revocations and un-revocations, newest first: who, when, why",
          (LIMIT, Param("before", {"type": "integer", "minimum": 1}, "next_before of the previous page")), result=LIST),
    Route("GET", "/api/v1/quotas", READ, quotas, "the slots of a day with cap, admitted, allocated", (Param("date", DAY, "YYYY-MM-DD, default today"),), result=LIST),
    Route("GET", "/api/v1/quotas/{date}/{slot}", READ, quota, "one slot, gate by gate",
          path_schemas={"date": DAY, "slot": {"type": "string", "pattern": r"^\d{2}:\d{2}-\d{2}:\d{2}$"}}, statuses=(200, 404)),
    Route("GET", "/api/v1/tickets/{ticket_id}", READ, ticket, "every event of one ticket across gates, and its revocation",
          path_schemas={"ticket_id": {"type": "string", "pattern": "^[0-9a-f]{24,64}$"}}),
    Route("GET", "/api/v1/events", READ, events, "gate events, newest first, paged and filtered", (
        Param("gate", GATE_ID), Param("kind", {"type": "string", "enum": ["admission", "deny", "exit"]}), Param("reason", {"type": "string", "maxLength": 64}),
        Param("since", {"type": "integer", "minimum": 0}, "Unix ms, inclusive"), Param("until", {"type": "integer", "minimum": 0}, "Unix ms, exclusive"),
        LIMIT, Param("before", {"type": "string", "maxLength": 200}, "next_before of the previous page")), result=LIST),
    Route("GET", "/api/v1/reports/{name}", READ, report, "admissions per hour x gate x ticket type, refusals by reason, flagged admissions, daily totals",
          (Param("date", DAY), Param("format", {"type": "string", "enum": ["json", "csv"]})),
          path_schemas={"name": {"type": "string", "enum": list(queries.REPORTS)}}, statuses=(200, 404), produces="application/json, text/csv"),
    Route("GET", "/api/v1/alerts", READ, alerts, "what needs attention now, most severe first", result=LIST),
    Route("GET", "/api/v1/audit", Permission.AUDIT_READ, audit, "the audit log, newest first",
          (LIMIT, Param("before", {"type": "integer", "minimum": 0}, "seq: entries before it")), result=LIST),
    Route("GET", "/api/v1/accounts", Permission.ACCOUNTS, accounts, "operator accounts and API tokens (names and roles, never secrets)", result=LIST),
]
