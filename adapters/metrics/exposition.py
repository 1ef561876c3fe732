"""``/metrics`` and the lifecycle endpoints, on a small asyncio HTTP/1.1 server.

On each scrape: the StatsD series (rendered here, because statsd_exporter exposes a counter under
exactly the mapped name — prometheus-client would append ``_total``), the adapter's own counters,
the process collector's metrics, and the families of every scrape-time source (JMX, JSON stats),
whose ``collect()`` calls are awaited concurrently while the loop keeps ingesting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from adapters.metrics.registry import DistinctSet, Family, Histogram, Registry, Scalar, Summary
from adapters.metrics.scrape import ScrapeTimeSource
from adapters.metrics.sources import split_host_port
from adapters.metrics.telemetry import Telemetry

log = logging.getLogger("metrics-adapter")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_REQUEST_HEAD = 16384
_IDLE = 120.0  # seconds a keep-alive connection may sit idle (Prometheus scrapes more often)
_SLICE = 0.005  # seconds of rendering between two yields to the event loop
_CHUNK = 50  # series rendered between two looks at the clock
_INF_LE = 'le="+Inf"'


def format_value(value: float) -> str:
    """Sample values and ``le``/``quantile`` labels the way Go's client formats them."""
    if value != value:
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


async def render_registry(registry: Registry, now: float) -> list[str]:
    """The StatsD families as exposition text. Rendering gives the event loop back every few
    milliseconds, so a large scrape does not stall the listeners long enough for the kernel's
    receive buffer to overflow."""
    out: list[str] = []
    clock = time.monotonic
    resume = clock() + _SLICE
    for family in registry:
        exposed = "gauge" if family.kind == "set" else family.kind
        series = list(family.series.values())
        if not series:
            continue
        out.append(f"# HELP {family.name} {_help(family.help)}\n# TYPE {family.name} {exposed}\n")
        for start in range(0, len(series), _CHUNK):
            _render_family(family, series[start : start + _CHUNK], now, out)
            if clock() >= resume:
                await asyncio.sleep(0)
                resume = clock() + _SLICE
    return out


def _render_family(family: Family, series: Iterable[object], now: float, out: list[str]) -> None:
    name = family.name
    names = family.label_names
    for s in series:
        if isinstance(s, Scalar):
            out.append(f"{name}{_labels(names, s.labels)} {format_value(s.value)}\n")
        elif isinstance(s, Histogram):
            running = 0
            for bound, count in zip(s.bounds, s.counts, strict=False):
                running += count
                le = f'le="{format_value(bound)}"'
                out.append(f"{name}_bucket{_labels(names, s.labels, le)} {running}\n")
            out.append(f"{name}_bucket{_labels(names, s.labels, _INF_LE)} {s.count}\n")
            out.append(f"{name}_sum{_labels(names, s.labels)} {format_value(s.sum)}\n")
            out.append(f"{name}_count{_labels(names, s.labels)} {s.count}\n")
        elif isinstance(s, Summary):
            for q, v in s.quantiles(now):
                quantile = f'quantile="{format_value(q)}"'
                out.append(f"{name}{_labels(names, s.labels, quantile)} {format_value(v)}\n")
            out.append(f"{name}_sum{_labels(names, s.labels)} {format_value(s.sum)}\n")
            out.append(f"{name}_count{_labels(names, s.labels)} {s.count}\n")
        elif isinstance(s, DistinctSet):
            out.append(f"{name}{_labels(names, s.labels)} {len(s.seen)}\n")
            s.seen = set()  # "distinct values per scrape interval"


def process_metric_names() -> frozenset[str]:
    """Every sample name prometheus-client's default collectors expose (process_*, python_*)."""
    return frozenset(
        name
        for family in REGISTRY.collect()
        for sample in family.samples
        for name in (sample.name, family.name)
    )


class _Families(CollectorRegistry):
    """A registry that only hands out the families it was given (for ``generate_latest``)."""

    def __init__(self, families: list[Metric]) -> None:
        super().__init__(auto_describe=False)
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


class Exposition:
    def __init__(
        self,
        registry: Registry,
        telemetry: Telemetry,
        telemetry_path: str,
        enable_lifecycle: bool,
        reload: Callable[[], Awaitable[str | None]],
        quit: Callable[[], None],
        clock: Callable[[], float],
        flush: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.telemetry = telemetry
        self.telemetry_path = telemetry_path
        self.enable_lifecycle = enable_lifecycle
        self.reload = reload
        self.quit = quit
        self.clock = clock
        # Brings the self-metrics up to date (the ingest stage counts per line shape).
        self.flush = flush
        self.sources: list[ScrapeTimeSource] = []
        self.ready = False
        self._process_names = process_metric_names()
        self._server: asyncio.Server | None = None

    async def scrape(self) -> bytes:
        sources = self.sources  # a reload may swap the list while this scrape awaits
        pulled = asyncio.gather(*(source.collect() for source in sources), return_exceptions=True)
        parts = await render_registry(self.registry, self.clock())
        self.flush()
        parts.extend(self.telemetry.families(self.registry.series_count))
        body = "".join(parts).encode("utf-8")
        families: list[Metric] = []
        seen: set[str] = set(self._process_names)
        for source, result in zip(sources, await pulled, strict=True):
            if isinstance(result, BaseException):
                # The protocol says collect() never raises; if one does, the rest still counts.
                log.error(
                    "scrape-time source failed", extra={"source": source.name, "error": str(result)}
                )
                continue
            for family in result:
                names = {family.name} | {sample.name for sample in family.samples}
                if any(self.registry.owns(n) or n in seen for n in names):
                    # Two families under one name make the whole scrape invalid: the first wins.
                    log.warning(
                        "dropping a scrape-time family whose name is taken",
                        extra={"source": source.name, "family": family.name},
                    )
                    continue
                seen |= names
                families.append(family)
        return body + generate_latest(REGISTRY) + generate_latest(_Families(families))

    # -- HTTP ----------------------------------------------------------------------------

    async def start(self, address: str) -> None:
        host, port = split_host_port(address, "--web.listen-address")
        self._server = await asyncio.start_server(
            self._connection, host=host or None, port=port, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IDLE)
                except (
                    TimeoutError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    OSError,
                ):
                    return
                if len(head) > _MAX_REQUEST_HEAD:
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = request_line.split(" ")
                except ValueError:
                    await _respond(writer, 400, "Bad Request\n", close=True)
                    return
                headers = {}
                for header in header_lines:
                    key, _, value = header.partition(":")
                    if key:
                        headers[key.strip().lower()] = value.strip()
                try:
                    length = int(headers.get("content-length", "0") or 0)
                except ValueError:
                    await _respond(writer, 400, "Bad Request\n", close=True)
                    return
                if length > _MAX_REQUEST_HEAD:
                    await _respond(writer, 400, "Bad Request\n", close=True)
                    return
                if length:
                    await reader.readexactly(length)
                close = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
                status, body, content_type = await self._route(method, target.split("?")[0])
                await _respond(
                    writer, status, body, content_type, close, head_only=method == "HEAD"
                )
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _route(self, method: str, path: str) -> tuple[int, bytes | str, str]:
        text = "text/plain; charset=utf-8"
        if path == self.telemetry_path:
            if method not in ("GET", "HEAD"):
                return 405, "Method Not Allowed\n", text
            return 200, await self.scrape(), CONTENT_TYPE
        if path == "/-/healthy":
            return 200, "OK\n", text
        if path == "/-/ready":
            return (200, "OK\n", text) if self.ready else (503, "Not ready\n", text)
        if path in ("/-/reload", "/-/quit"):
            if method not in ("POST", "PUT"):
                return 405, "Only POST or PUT requests allowed\n", text
            if not self.enable_lifecycle:
                return 403, "Lifecycle API is not enabled.\n", text
            if path == "/-/quit":
                asyncio.get_running_loop().call_soon(self.quit)
                return 200, "Requesting termination... Goodbye!\n", text
            error = await self.reload()
            if error is not None:
                return 500, f"failed to reload config: {error}\n", text
            return 200, "OK\n", text
        if path == "/":
            page = (
                "<html><head><title>StatsD Exporter</title></head><body>"
                "<h1>StatsD Exporter</h1>"
                f'<p><a href="{self.telemetry_path}">Metrics</a></p></body></html>\n'
            )
            return 200, page, "text/html; charset=utf-8"
        return 404, "404 page not found\n", text


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes | str,
    content_type: str = "text/plain; charset=utf-8",
    close: bool = False,
    head_only: bool = False,
) -> None:
    payload = body.encode("utf-8") if isinstance(body, str) else body
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    ).encode("latin-1")
    writer.write(head if head_only else head + payload)
    await writer.drain()
