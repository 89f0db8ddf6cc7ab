"""Routes that change state: login, revocations, quotas, commands, alert acks, accounts, tokens.

Each builds an action from the JSON body (``hub.console.actions`` checks it)
and hands it to the dispatcher, which audits it in the same transaction.
Logins are throttled per account and per address (429 with Retry-After).
"""

from __future__ import annotations

import logging
import math

from protocol.topics import TopicError, check_name

from .actions import (AckAlert, AddAccount, AddToken, Outcome, RemoveAccount, Revoke, RevokeToken, SendCommand, SetQuota, Unrevoke, command_of, gate_names,
                      quota_of, ticket_ids)
from .passwords import check_password, new_token, token_hash
from .roles import Permission, Principal, RoleError, parse_role
from .web import SESSION_COOKIE, Console, HttpError, Request, Response, Route, credential_of, json_response

log = logging.getLogger(__name__)

MAX_KEY = 200
TICKETS = {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {"type": "string", "pattern": "^[0-9a-f]{24,64}$"}}
REASON = {"type": "string", "minLength": 1, "maxLength": 500}
NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
ROLE = {"type": "string", "enum": ["viewer", "operator", "admin", "sales"]}


def _obj(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _text(body: dict, key: str, limit: int = 500) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise HttpError(422, f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _only(body: dict, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise HttpError(422, f"unknown field {extra[0]!r} (fields: {', '.join(sorted(allowed))})")


def _perform(console: Console, who: Principal | None, action, key: str | None = None) -> Response:
    assert who is not None
    with console.pool.borrow() as store:
        outcome: Outcome = console.dispatcher(store).perform(who, action, key)
    headers = (("Idempotent-Replayed", "true"),) if outcome.replayed else ()
    return json_response(outcome.body, outcome.status, headers)


def login(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"name", "password"})
    name, password = _text(body, "name", 64), body.get("password")
    if not isinstance(password, str):
        raise HttpError(422, "password must be a string")
    keys = (f"name:{name}", f"addr:{request.remote}")
    wait = console.throttle.retry_after(*keys)
    if wait > 0:
        raise HttpError(429, f"too many failed logins; try again in {math.ceil(wait)} s", (("Retry-After", str(math.ceil(wait))),))
    with console.pool.borrow() as store:
        account = store.account(name)
        if account is None or not check_password(password, account[1]):
            console.throttle.failed(*keys)
            log.warning("login refused name=%s origin=%s", name, request.remote)
            raise HttpError(401, "wrong name or password")
        console.throttle.succeeded(*keys)
        role, token = account[0], new_token()
        now_ms = console.now_ms()
        expires = now_ms + int(console.settings.session_hours * 3_600_000)
        with store.transaction():
            store.add_credential(token_hash(token), "session", name, role, now_ms, expires)
            store.append_audit(Principal(name, role, "user", request.remote), "login", {}, now_ms)
    secure = "; Secure" if console.tls else ""
    cookie = f"{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={int(console.settings.session_hours * 3600)}{secure}"
    return json_response({"name": name, "role": role.value, "token": token, "expires_ms": expires}, 200, (("Set-Cookie", cookie),))


def logout(console: Console, request: Request, who: Principal | None) -> Response:
    token = credential_of(request)
    if token is not None and who is not None and who.kind == "user":
        with console.pool.borrow() as store, store.transaction():
            store.drop_credential(token_hash(token))
            store.append_audit(who, "logout", {}, console.now_ms())
    return json_response({"logged_out": True}, 200, (("Set-Cookie", f"{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),))


def revoke(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"ticket_ids", "reason", "expires"})
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= MAX_KEY:
        raise HttpError(422, f"Idempotency-Key must have 1..{MAX_KEY} characters")
    expires = body.get("expires")
    if expires is not None and (type(expires) is not int or not 0 < expires < 2**53 // 1000):
        raise HttpError(422, "expires must be a Unix time in seconds")
    return _perform(console, who, Revoke(ticket_ids(body.get("ticket_ids")), _text(body, "reason"), expires), key)


def unrevoke(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"ticket_ids", "reason"})
    return _perform(console, who, Unrevoke(ticket_ids(body.get("ticket_ids")), _text(body, "reason")))


def set_quota(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"date", "slot", "cap"})
    return _perform(console, who, SetQuota(quota_of(_text(body, "date", 10), _text(body, "slot", 11), body.get("cap"))))


def command(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"command", "args", "gates", "site"})
    site = body.get("site", False)
    if type(site) is not bool:
        raise HttpError(422, f'"site" must be true or false, got {site!r}')
    if ("gates" in body) == site:
        raise HttpError(422, 'give either "gates": [ids] or "site": true')
    gates = gate_names(body["gates"]) if "gates" in body else None
    return _perform(console, who, SendCommand(gates, command_of(body.get("command"), body.get("args", {}))))


def ack_alert(console: Console, request: Request, who: Principal | None) -> Response:
    alert_id = request.params["alert_id"]
    if alert_id not in {alert["id"] for alert in console.feed.snapshot.data.get("alerts", [])}:
        raise HttpError(404, f"no current alert {alert_id[:100]!r}")
    return _perform(console, who, AckAlert(alert_id))


def add_account(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"name", "role", "password"})
    password = body.get("password")
    if not isinstance(password, str):
        raise HttpError(422, "password must be a string")
    return _perform(console, who, AddAccount(_name(body), _role(body), password))


def add_token(console: Console, request: Request, who: Principal | None) -> Response:
    body = request.json()
    _only(body, {"name", "role"})
    return _perform(console, who, AddToken(_name(body), _role(body)))


def remove_account(console: Console, request: Request, who: Principal | None) -> Response:
    return _perform(console, who, RemoveAccount(_name(request.params)))


def revoke_token(console: Console, request: Request, who: Principal | None) -> Response:
    return _perform(console, who, RevokeToken(_name(request.params)))


def _name(body: dict) -> str:
    try:
        return check_name(body.get("name"), "name")
    except TopicError as error:
        raise HttpError(422, str(error)) from None


def _role(body: dict):
    try:
        return parse_role(str(body.get("role")))
    except RoleError as error:
        raise HttpError(422, str(error)) from None


WRITE = (200, 201, 409, 422)
ROUTES = [
    Route("POST", "/api/v1/login", None, login, "log in with name and password: a session token (also set as a cookie)",
          body=_obj({"name": {"type": "string", "minLength": 1, "maxLength": 64}, "password": {"type": "string", "maxLength": 1024}}, ["name", "password"]), statuses=(200, 401, 422, 429)),
    Route("POST", "/api/v1/logout", Permission.SESSION, logout, "end this session"),
    Route("POST", "/api/v1/revocations", Permission.REVOKE, revoke, "revoke up to 10,000 tickets at every gate; Idempotency-Key makes a retry safe",
          body=_obj({"ticket_ids": TICKETS, "reason": REASON, "expires": {"type": "integer", "minimum": 1, "maximum": 9007199254740}}, ["ticket_ids", "reason"]),
          statuses=(201, 409, 422), idempotency=True),
    Route("POST", "/api/v1/unrevocations", Permission.REVOKE, unrevoke, "take tickets out of the hub's revocation set (gates drop them at their next snapshot)",
          body=_obj({"ticket_ids": TICKETS, "reason": REASON}, ["ticket_ids", "reason"]), statuses=WRITE),
    Route("POST", "/api/v1/quotas", Permission.QUOTA, set_quota, "set or change the cap of a time slot",
          body=_obj({"date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}, "slot": {"type": "string", "pattern": r"^\d{2}:\d{2}-\d{2}:\d{2}$"},
                     "cap": {"type": "integer", "minimum": 0, "maximum": 10_000_000}}, ["date", "slot", "cap"]), statuses=WRITE),
    Route("POST", "/api/v1/commands", Permission.COMMAND, command, "a signed command to some gates or the whole site (emergency_open on/off)",
          body={"type": "object", "properties": {
              "command": {"type": "string", "enum": ["emergency_open"]},
              "args": {"type": "object", "properties": {"on": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 200}}, "additionalProperties": False},
              "gates": {"type": "array", "minItems": 1, "maxItems": 1000, "items": NAME}, "site": {"type": "boolean"}},
              "required": ["command"], "additionalProperties": False}, statuses=(201, 404, 409, 422)),
    Route("POST", "/api/v1/alerts/{alert_id}/ack", Permission.ALERT_ACK, ack_alert, "acknowledge an alert (it stays listed until its cause clears)",
          path_schemas={"alert_id": {"type": "string", "maxLength": 200}}, statuses=(200, 404)),
    Route("POST", "/api/v1/accounts", Permission.ACCOUNTS, add_account, "create an operator account",
          body=_obj({"name": NAME, "role": ROLE, "password": {"type": "string", "minLength": 8, "maxLength": 1024}}, ["name", "role", "password"]), statuses=WRITE),
    Route("POST", "/api/v1/tokens", Permission.ACCOUNTS, add_token, "create an API token (shown once)", body=_obj({"name": NAME, "role": ROLE}, ["name", "role"]), statuses=WRITE),
    Route("DELETE", "/api/v1/accounts/{name}", Permission.ACCOUNTS, remove_account, "remove an account; its open sessions end at once",
          path_schemas={"name": NAME}, statuses=(200, 404, 422)),
    Route("DELETE", "/api/v1/tokens/{name}", Permission.ACCOUNTS, revoke_token, "revoke every API token of this name; the next request with one is 401",
          path_schemas={"name": NAME}, statuses=(200, 404, 422)),
]
