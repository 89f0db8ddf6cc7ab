"""The console's HTTP server: stdlib ``ThreadingHTTPServer`` in a thread of ``lungta hub run``.

Why the stdlib (docs/console.md): the hub is threads + paho + SQLite on a
small machine; a thread per connection is what its few clients (a
control-room screen, some phones, Prometheus, the ticket office's system)
need, and it adds nothing to build or install offline. Server-sent events
(``/api/v1/live``) hold a thread each, blocked on the live feed's condition.
TLS is the stdlib's ``ssl`` with the configured certificate, or a reverse
proxy in front (docs/console.md has an nginx block).

``ConsoleServer.start`` is the composition root: it builds the store pool,
the live feed and its thread, the route table, /metrics, and the listener.
"""

from __future__ import annotations

import logging
import mimetypes
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from protocol.gate_messages import GateSettings

from ..config import HubConfig
from . import api_read, api_write
from .live import LiveFeed
from .metrics import metrics_renderer
from .openapi import openapi_document
from .roles import Permission, Principal
from .settings import HttpSettings
from .store import StorePool
from .web import MAX_BODY, Console, Request, Response, Route, error_response, json_response

log = logging.getLogger(__name__)

SSE_KEEPALIVE_S = 15.0
IDLE_S = 60.0  # longer than the SSE keepalive: a live dashboard is never idle this long
HANDSHAKE_S = 10.0  # a TLS client that has not finished its handshake by then is dropped
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"),
)


class ConsoleStartError(Exception):
    """The console cannot start as configured (port taken, certificate unreadable); the message names the key."""


class ConsoleHTTPServer(ThreadingHTTPServer):
    """A thread per connection; with ``tls``, the TLS handshake happens in that thread, with a deadline.

    Wrapping the listening socket instead would run every handshake in the
    accepting thread: one client that connects and says nothing (a phone that
    lost its signal, a port scanner) would stop the console for everyone.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None) -> None:
        super().__init__(address, handler)
        self.tls = tls

    def finish_request(self, request, client_address) -> None:  # socketserver's signature
        if self.tls is None:
            return super().finish_request(request, client_address)
        request.settimeout(HANDSHAKE_S)
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:  # plain HTTP to the TLS port, a dropped or silent client
            log.debug("tls handshake with %s failed: %s", client_address[0], error)
            return None
        try:
            wrapped.settimeout(None)
            return super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


class ConsoleServer:
    """The listener and the live feed, each on a thread this object owns and stops."""

    def __init__(self, console: Console, httpd: ThreadingHTTPServer, threads: list[threading.Thread], stop_event: threading.Event, pool: StorePool) -> None:
        self.console, self.httpd, self.threads, self._stop, self._pool = console, httpd, threads, stop_event, pool

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        if isinstance(host, bytes):  # typeshed allows it for AF_UNIX-style addresses; a TCP listener gives str
            host = host.decode()
        scheme = "https" if self.console.tls else "http"
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"{scheme}://{shown}:{port}/"

    @classmethod
    def start(cls, config: HubConfig, settings: HttpSettings, broker_up: Callable[[], bool], hub_stats: Callable[[], dict], clock: Callable[[], float] = time.time,
              hub: GateSettings | None = None) -> "ConsoleServer":
        """Open the listener (a busy port fails here, before anything runs) and start serving; ``hub`` as for ``LiveFeed``."""
        stop = threading.Event()
        feed = LiveFeed(config, settings, broker_up, hub_stats, clock, hub)
        pool = StorePool(config.database, config.synchronous)
        console = Console(config, settings, pool, feed, clock)
        console.metrics = metrics_renderer(feed)
        console.routes = routes(console)
        context = None
        if settings.tls_cert and settings.tls_key:
            try:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(settings.tls_cert, settings.tls_key)
            except (OSError, ssl.SSLError) as error:
                pool.close()
                raise ConsoleStartError(f"[http] tls_cert / tls_key ({settings.tls_cert}, {settings.tls_key}): {getattr(error, 'strerror', None) or error}") from None
        try:
            httpd = ConsoleHTTPServer(settings.address, handler_for(console, stop), context)
        except OSError as error:
            pool.close()
            raise ConsoleStartError(f"[http] listen = {settings.listen!r}: {error.strerror}") from None
        threads = [
            threading.Thread(target=feed.run, args=(stop, config.database), name="console-feed", daemon=True),
            threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="console-http", daemon=True),
        ]
        for thread in threads:
            thread.start()
        server = cls(console, httpd, threads, stop, pool)
        log.info("console listening on %s", server.url)
        return server

    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self.threads)

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self.threads:
            thread.join(5)
        self._pool.close()


LIVE = Route("GET", "/api/v1/live", Permission.READ, lambda c, r, w: _sse_marker(c, r, w),
             "server-sent events (send Accept: text/event-stream): the live view at once, then at each change", statuses=(200, 406), produces="text/event-stream")


def routes(console: Console) -> list[Route]:
    table = [*api_read.ROUTES, *api_write.ROUTES, LIVE]
    from lungta import __version__
    document = openapi_document(table, console.config.site, __version__)
    extra = [
        Route("GET", "/api/v1/openapi.json", None, lambda c, r, w: json_response(document), "this document"),
        Route("GET", "/metrics", None, lambda c, r, w: Response(200, c.metrics(), "text/plain; version=0.0.4; charset=utf-8"), "Prometheus metrics"),
        Route("GET", "/", None, lambda c, r, w: _static(c, "index.html"), "the dashboard"),
        Route("GET", "/static/{name}", None, lambda c, r, w: _static(c, r.params["name"]), "dashboard assets"),
        Route("GET", "/healthz", None, lambda c, r, w: json_response({"ok": True, "feed_version": c.feed.snapshot.version}), "liveness"),
    ]
    return table + extra


def _sse_marker(console: Console, request: Request, who: Principal | None) -> Response:
    """The handler streams (``Handler._stream``); a client that did not ask for a stream gets a 406, not an endless body."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        return error_response(406, "/api/v1/live is a server-sent event stream: send Accept: text/event-stream (an EventSource does)")
    return Response(200, b"", "text/event-stream")


def _static(console: Console, name: str) -> Response:
    base = console.static_dir.resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        return error_response(404, f"no such file: {name}")
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    return Response(200, path.read_bytes(), kind, (("Cache-Control", "no-cache"),))


def handler_for(console: Console, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lungta-console"
        timeout = IDLE_S  # a connection that sends nothing (or takes no bytes) this long is closed: its thread is freed

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s %s", self.address_string(), format % args)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            length_text = self.headers.get("Content-Length", "0")
            if self.headers.get("Transfer-Encoding"):
                return self._send(error_response(411, "send a Content-Length, not a chunked body"), close=True)
            if not length_text.isdigit() or int(length_text) > MAX_BODY:
                return self._send(error_response(413, f"body over {MAX_BODY} bytes"), close=True)
            body = self.rfile.read(int(length_text)) if int(length_text) else b""
            request = Request(method, url.path, dict(parse_qsl(url.query)), {k.lower(): v for k, v in self.headers.items()}, body, self.client_address[0])
            response = console.handle(request)
            if response.content_type == "text/event-stream" and response.status == 200:
                return self._stream()
            self._send(response)

        def _send(self, response: Response, close: bool = False) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in (*SECURITY_HEADERS, *response.headers):
                self.send_header(name, value)
            if not any(name == "Cache-Control" for name, _ in response.headers):
                self.send_header("Cache-Control", "no-store")
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(response.body)

        def _stream(self) -> None:
            """One snapshot now, then one per change; a comment line every 15 s keeps proxies open."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            version = -1
            try:
                self.wfile.write(b"retry: 2000\n\n")
                while not stop.is_set():
                    snap = console.feed.snapshot if version < 0 else console.feed.wait_newer(version, SSE_KEEPALIVE_S)
                    if snap is None:
                        self.wfile.write(b": keepalive\n\n")
                    else:
                        version = snap.version
                        self.wfile.write(f"id: {snap.version}\nevent: snapshot\ndata: {snap.json}\n\n".encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                return

    return Handler


def start_for_service(config: HubConfig, service) -> ConsoleServer | None:
    """The console of a running ``HubService``, when hub.toml has ``[http]``."""
    settings: HttpSettings | None = getattr(config, "http", None)
    if settings is None:
        return None

    def hub_stats() -> dict:
        with service.progress:
            stats = service.stats
            return {"messages": stats.messages, "events_stored": stats.events_stored, "duplicates": stats.duplicates, "malformed": stats.malformed,
                    "acks_sent": stats.acks_sent, "outbox_published": stats.outbox_published, "unrelayed": stats.unrelayed, "pongs": stats.pongs,
                    "refused": sum(stats.refused_by_gate.values()), "rate_limited": sum(stats.rate_limited.values()),
                    "batches": stats.batches, "batch_seconds": stats.batch_seconds, "session_takeovers": service.link.takeovers()}

    return ConsoleServer.start(config, settings, service.link.connected.is_set, hub_stats, hub=service.settings_watch.hub)



