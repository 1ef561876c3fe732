"""The HTTP endpoint on ``--http-bind``: ``/`` (503 until the first sync, then 200),
``/metrics`` (with ``--http-metrics``) and, when a trigger secret is configured, ``POST /sync``.

A deliberately small HTTP/1.1 server on asyncio streams: one request per connection, bounded
header and body sizes, so a probe or a webhook can never make us buffer without limit.
"""

from __future__ import annotations

import asyncio
import io
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecars.git_sync import metrics, trigger
from sidecars.git_sync.jsonlog import Logger

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024
READ_TIMEOUT = 10.0
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


@dataclass
class HttpState:
    ready: bool = False


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HttpEndpoint:
    def __init__(
        self,
        state: HttpState,
        metrics_enabled: bool,
        trigger_secret: Callable[[], bytes] | None,
        on_trigger: Callable[[], None],
        log: Logger,
        debug_enabled: bool = False,
    ) -> None:
        self.state = state
        self.metrics_enabled = metrics_enabled
        self.debug_enabled = debug_enabled
        self.trigger_secret = trigger_secret
        self.on_trigger = on_trigger
        self.log = log

    async def start(self, bind: str) -> asyncio.Server:
        host_text, _, port = bind.rpartition(":")
        host = host_text.strip("[]") or None  # ":8080" listens on every address, as Go does
        server = await asyncio.start_server(self._handle, host, int(port))
        self.log.info(0, "serving HTTP", endpoint=bind, metrics=self.metrics_enabled)
        return server

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            status, ctype, body = (
                self._respond(request) if request else (400, "text/plain", b"bad request\n")
            )
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _respond(self, request: Request) -> tuple[int, str, bytes]:
        path = request.path.partition("?")[0]
        if path == "/sync" and self.trigger_secret is not None:
            return self._trigger(request)
        if path == "/metrics" and self.metrics_enabled:
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        if path.startswith("/debug/pprof/") and self.debug_enabled:
            return 200, "text/plain; charset=utf-8", _stack_dump().encode()
        # Every other path is the readiness check, as upstream's catch-all "/" handler: probes
        # written for it (`/`, `/healthz`, ...) keep working.
        if self.state.ready:
            return 200, "text/plain", b""
        return 503, "text/plain", b"repo is not ready\n"

    def _trigger(self, request: Request) -> tuple[int, str, bytes]:
        assert self.trigger_secret is not None
        if request.method != "POST":
            return 405, "text/plain", b"use POST\n"
        if request.headers.get("__too_large__"):
            return 413, "text/plain", b"body too large\n"
        if not trigger.authorized(self.trigger_secret(), request.headers, request.body):
            metrics.trigger_requests.labels("unauthorized").inc()
            self.log.info(0, "refused an unauthenticated sync trigger")
            return 401, "text/plain", b"unauthorized\n"
        metrics.trigger_requests.labels("accepted").inc()
        self.log.info(1, "sync triggered over HTTP")
        self.on_trigger()
        return 202, "text/plain", b"sync scheduled\n"


def _stack_dump() -> str:
    """``--http-pprof``'s Python equivalent of Go's goroutine dump: every asyncio task's and
    thread's stack."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        out.write(f"task {task.get_name()} {task.get_coro()!r}\n")
        task.print_stack(limit=20, file=out)
        out.write("\n")
    for ident, frame in sys._current_frames().items():
        out.write(f"thread {ident}\n{''.join(traceback.format_stack(frame, limit=20))}\n")
    return out.getvalue()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        return None
    if len(head) > MAX_HEADER_BYTES:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    body = b""
    if length > MAX_BODY_BYTES:
        headers["__too_large__"] = "1"
    elif length > 0:
        body = await reader.readexactly(length)
    return Request(parts[0], parts[1], headers, body)
