"""The wire: an HTTPS server on loopback that turns bytes into `Request`s for the org's API and its
`Response`s back into bytes (gzip when asked, keep-alive, exact headers), and injects transport faults.

Kept apart from the API so that the API is plain functions of requests, and so that nothing a handler
raises ever reaches a client as a Python traceback.
"""

from __future__ import annotations

import decimal
import json
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from isal import igzip  # gzip as Salesforce sends it when asked, ~3x faster than zlib

from sonora_pipeline.localorg.soql.results import dumps

log = logging.getLogger(__name__)

JSON_TYPE = "application/json;charset=UTF-8"
_STANDARD_HEADERS = {
    "Strict-Transport-Security": "max-age=31536002; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "1; mode=block",
    "X-Robots-Tag": "none",
    "Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
    "Vary": "Accept-Encoding",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        # Decimal: a number field keeps every digit a client sends (18 digits do not fit a float).
        return json.loads(self.body.decode("utf-8") or "null", parse_float=decimal.Decimal)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        # Numbers as Salesforce writes them (Java Double.toString: 300.0, 1.2345678E7).
        return cls(status, dumps(payload).encode("utf-8"), JSON_TYPE, headers or {})

    @classmethod
    def raw_json(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode("utf-8"), JSON_TYPE, headers or {})

    @classmethod
    def error(cls, status: int, error_code: str, message: str, fields: list[str] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        item: dict[str, Any] = {"message": message, "errorCode": error_code}
        if fields is not None:
            item["fields"] = fields
        return cls.json(status, [item], headers)

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", None, headers or {})


class Transport:
    """What the server needs from the org: the handler, and the transport faults to inject."""

    handle: Callable[[Request], Response]
    decide_fault: Callable[[str], str | None]
    latency: Callable[[str], float]
    now_timestamp: Callable[[], float]
    corruption: Callable[[str, str | None], str | None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall between
    server_version = "SFDC"
    sys_version = ""
    transport: Transport  # set on the subclass made per server

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header comes from the org's clock, which tests and demos can move: clients that
        take "now" from the server (as the sync does, to be immune to local clock skew) follow it."""
        from email.utils import formatdate

        return formatdate(self.transport.now_timestamp(), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        except (ValueError, OSError):
            self.close_connection = True
            return
        fault = self.transport.decide_fault(request.path)
        delay = self.transport.latency(request.path)
        if delay:
            time.sleep(delay)
        if fault == "drop":
            # A connection reset with no response at all, as a load balancer dropping the socket does.
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
            except OSError:
                pass
            return
        if fault == "error":
            response = Response.error(503, "SERVER_UNAVAILABLE", "Server Unavailable")
        else:
            try:
                response = self.transport.handle(request)
            except Exception:  # the last line of defence: never a traceback on the wire
                log.exception("local org handler failed for %s %s", request.method, request.path)
                response = Response.error(
                    500, "UNKNOWN_EXCEPTION",
                    "An unexpected error occurred. Please include this ErrorId if you contact support: "
                    "1735426101-88123 (-1207524733)",
                )
        self._corrupt(request, response)
        self._write(request, response)

    def _corrupt(self, request: Request, response: Response) -> None:
        """Malformed answers on demand: a JSON body cut short, a CSV page missing its last row, or a page
        whose Sforce-NumberOfRecords is off by one (what clients must detect rather than trust)."""
        if response.status >= 300 or not response.body:
            return
        kind = self.transport.corruption(request.path, response.content_type)
        if kind == "truncate":
            response.body = response.body[: max(1, len(response.body) // 2)]
        elif kind == "short":
            lines = response.body.rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) == 2:
                response.body = lines[0] + b"\n"
        elif kind == "miscount":
            count = int(response.headers.get("Sforce-NumberOfRecords", "0"))
            response.headers["Sforce-NumberOfRecords"] = str(count + 1)

    def _write(self, request: Request, response: Response) -> None:
        body = response.body
        headers = dict(_STANDARD_HEADERS)
        headers.update(response.headers)
        accepts_gzip = "gzip" in (request.header("accept-encoding") or "")
        if body and accepts_gzip and len(body) > 1024:
            body = igzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        if response.content_type:
            headers["Content-Type"] = response.content_type
        try:
            self.send_response(response.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and request.method != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any):
        self.open_connections: set[socket.socket] = set()  # closed by stop(), so no keep-alive outlives it
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self.open_connections = self.open_connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended abruptly", client_address)


# How often a lone server's accept loop checks for stop(): socketserver's default (0.5 s) made every org's
# stop() wait ~0.3 s on average, which hundreds of test orgs pay again and again; 20 wake-ups a second cost nothing.
_STOP_POLL_SECONDS = 0.05


class HttpsServer:
    """Serves `transport` over TLS on (host, port): in a background thread of its own (`start()`), or through
    a `SharedAcceptor` that accepts for many servers with one thread (`start(acceptor)`)."""

    def __init__(self, transport: Transport, ssl_context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0):
        handler = type("LocalOrgHandler", (_Handler,), {"transport": transport})
        self._server = _Server((host, port), handler)
        self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None
        self._acceptor: SharedAcceptor | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self, acceptor: SharedAcceptor | None = None) -> None:
        if acceptor is not None:
            self._acceptor = acceptor
            acceptor.add(self._server)
            return
        self._thread = threading.Thread(target=self._server.serve_forever, args=(_STOP_POLL_SECONDS,),
                                        name="localorg-https", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.remove(self._server)
        else:
            self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread:
            self._thread.join(timeout=5)


class SharedAcceptor:
    """One thread that accepts connections for many servers (a selector over their listening sockets), so
    1,000 orgs need one accepting thread, not 1,000 `serve_forever` loops each waking twice a second. Each
    accepted connection is then served in its own thread as before (ThreadingHTTPServer), and its TLS
    handshake happens there, so a slow client never holds up the others' accepts."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="localorg-acceptor", daemon=True)
        self._thread.start()

    def add(self, server: _Server) -> None:
        server.socket.setblocking(False)  # an accept that lost a race returns at once instead of hanging
        with self._lock:
            self._selector.register(server.socket, selectors.EVENT_READ, server)
        self._wake()

    def remove(self, server: _Server) -> None:
        with self._lock:
            try:
                self._selector.unregister(server.socket)
            except (KeyError, ValueError):
                pass
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stopping:
            events = self._selector.select(timeout=1.0)
            for key, _ in events:
                if key.data is None:
                    try:
                        os.read(self._wake_read, 4096)
                    except OSError:
                        pass
                    continue
                self._accept(key.data)

    @staticmethod
    def _accept(server: _Server) -> None:
        try:
            server._handle_request_noblock()  # accept, then ThreadingHTTPServer serves it in a new thread
        except (BlockingIOError, OSError):
            pass  # nothing to accept after all, or the server closed between select and accept

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        self._thread.join(timeout=5)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
