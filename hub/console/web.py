"""The console's HTTP vocabulary: requests, responses, routes, and the app they meet in.

Transport-free on purpose: ``server.py`` turns bytes on a socket into a
``Request`` and a ``Response`` back into bytes; everything between (routing,
authentication, permission, JSON) is here and in the route modules, so the
route table is also the OpenAPI document (``openapi.py``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import unquote

from ..config import HubConfig
from .actions import ActionError, Dispatcher
from .live import LiveFeed
from .passwords import LoginThrottle, token_hash
from .roles import Permission, Principal
from .settings import HttpSettings
from .store import ConsoleStore, StorePool

log = logging.getLogger(__name__)

SESSION_COOKIE = "lungta_session"
MAX_BODY = 2 * 2**20  # 10,000 ticket ids in hex fit 16 times over


class HttpError(Exception):
    """Answer with ``status`` and this message as ``{"error": ...}``; raised anywhere below a route."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    remote: str
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict:
        """The body as a JSON object; anything else is a 4xx naming what is wrong."""
        if not self.headers.get("content-type", "").startswith("application/json"):
            raise HttpError(415, "send the body as application/json")
        try:
            value = json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as error:
            raise HttpError(400, f"body is not JSON: {error}") from None
        if not isinstance(value, dict):
            raise HttpError(422, "body must be a JSON object")
        return value


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(value: object, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), "application/json; charset=utf-8", headers)


def error_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response({"error": message, "status": status, "title": HTTPStatus(status).phrase}, status, headers)


@dataclass(frozen=True)
class Param:
    """A query parameter for the OpenAPI document: name, JSON-schema, description."""

    name: str
    schema: dict
    description: str = ""


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str              # /api/v1/gates/{gate}
    permission: Permission | None  # None: no credentials needed
    handler: Callable[["Console", Request, Principal | None], Response]
    summary: str
    query: tuple[Param, ...] = ()
    body: dict | None = None  # JSON schema of the request body
    result: dict = field(default_factory=lambda: {"type": "object"})
    path_schemas: dict = field(default_factory=dict)
    statuses: tuple[int, ...] = (200,)
    idempotency: bool = False
    produces: str = "application/json"

    def match(self, path: str) -> dict[str, str] | None:
        """The path's parameters, percent-decoded (a browser's ``encodeURIComponent`` sends ``:`` as ``%3A``);
        matched before decoding, so an encoded ``/`` never makes a segment of its own."""
        found = _regex(self.pattern).fullmatch(path)
        return None if found is None else {name: unquote(value) for name, value in found.groupdict().items()}


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)))


class Console:
    """Everything a route needs, handed over by the composition root (``server.start_console``)."""

    def __init__(self, config: HubConfig, settings: HttpSettings, pool: StorePool, feed: LiveFeed, clock: Callable[[], float] = time.time) -> None:
        self.config, self.settings, self.pool, self.feed, self.clock = config, settings, pool, feed, clock
        self.throttle = LoginThrottle(settings.login_failures)
        self.routes: list[Route] = []
        self.static_dir = Path(__file__).with_name("static")
        self.tls = settings.tls_cert is not None
        self.metrics: Callable[[], bytes] = lambda: b""

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def dispatcher(self, store: ConsoleStore) -> Dispatcher:
        return Dispatcher(store, self.config, self.clock)

    def handle(self, request: Request) -> Response:
        """Route, authenticate, authorise, run; every failure a user can cause is a 4xx with a message."""
        allowed = []
        for route in self.routes:
            params = route.match(request.path)
            if params is None:
                continue
            allowed.append(route.method)
            if route.method == request.method:
                return self._run(route, Request(**{**request.__dict__, "params": params}))
        if allowed:
            return error_response(405, f"{request.method} is not allowed here (use {', '.join(sorted(set(allowed)))})", (("Allow", ", ".join(sorted(set(allowed)))),))
        return error_response(404, f"no such resource: {request.path}")

    def _run(self, route: Route, request: Request) -> Response:
        try:
            who = None
            if route.permission is not None:
                who = self.authenticate(request)
                if who is None:
                    raise HttpError(401, "log in or send Authorization: Bearer <token>", (("WWW-Authenticate", 'Bearer realm="lungta"'),))
                if not who.may(route.permission):
                    raise HttpError(403, f"role {who.role.value} may not {route.permission.value}")
            return route.handler(self, request, who)
        except HttpError as error:
            return error_response(error.status, str(error), error.headers)
        except ActionError as error:
            return error_response(error.status, str(error))

    def authenticate(self, request: Request) -> Principal | None:
        """A Bearer token (API token or session) or the session cookie the dashboard got at login."""
        token = credential_of(request)
        if token is None:
            return None
        with self.pool.borrow() as store:
            found = store.credential(token_hash(token), self.now_ms())
        if found is None:
            return None
        kind, name, role = found
        return Principal(name, role, "token" if kind == "token" else "user", request.remote)


def credential_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    try:
        cookie = SimpleCookie(request.headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel and morsel.value else None


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise HttpError(422, f"query parameter {name} must be an integer") from None
    if not low <= value <= high:
        raise HttpError(422, f"query parameter {name} must be in {low}..{high}")
    return value
