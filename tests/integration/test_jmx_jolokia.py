"""The JMX source against a real JVM with Jolokia (the demo app), and against broken servers.

A JVM or a server that fails must show as ``jmx_scrape_error 1`` with the rest of the answer
intact; nothing may raise out of ``collect()``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.metrics.jmx import jmx_sources
from adapters.metrics.scrape import ScrapeTimeSource
from tests.fixtures.exposition import render, series, types
from tests.fixtures.jvm import DemoJvm
from tests.fixtures.ports import free_port

DEMO_RULES = r"""
lowercaseOutputName: true
rules:
- pattern: 'demo.app<type=Requests, name=(\w+), zone=(\w+)><>Count'
  name: demo_requests
  type: COUNTER
  labels: {endpoint: $1, zone: $2}
- pattern: 'demo.app<type=Requests, name=(\w+), zone=(\w+)><>BytesSent: (.*)'
  name: demo_bytes_sent_$3
  labels: {endpoint: $1}
- pattern: 'demo.app<type=Requests, name=api, zone=eu><>Status: (\w+)'
  name: demo_status
  value: 1
  labels: {status: $1}
- pattern: 'demo.app<type=Requests, name=api, zone=eu><>Ticks'
  name: demo_ticks
  type: COUNTER
- pattern: 'demo.app<type=Cache, name=(\w+)><Stats>(\w+)'
  name: demo_cache_$2
  type: GAUGE
  labels: {cache: $1}
- pattern: 'demo.app<type=Cache, name=(\w+), shard=(\w+)><Shards>size'
  name: demo_shard_size
  labels: {cache: $1, shard: $2}
- pattern: 'demo.app<type=Regions, key=(\w+)><>Entries'
  name: demo_region_entries
  labels: {region: $1}
- pattern: 'java.lang<type=Memory><HeapMemoryUsage>used'
  name: jvm_heap_used_bytes
- pattern: 'demo.app<name="quoted,name", type=Requests><>Count'
  name: demo_quoted
"""


def write_config(tmp_path: Path, url: str, body: str = DEMO_RULES, name: str = "jmx.yml") -> str:
    path = tmp_path / name
    # A cold JVM's first scrape (list + read) on a loaded 2-core machine can take seconds.
    if "timeout:" not in body:
        body = "timeout: 15\n" + body
    path.write_text(f"jolokiaUrl: {url}\n{body}")
    return str(path)


async def scrape(source: ScrapeTimeSource) -> str:
    return render(await source.collect())


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


def test_demo_jvm_series(demo_jvm: DemoJvm, tmp_path: Path) -> None:
    (source,) = jmx_sources([write_config(tmp_path, demo_jvm.url)])

    async def body() -> None:
        try:
            first = await scrape(source)
            second = await scrape(source)
        finally:
            await source.close()
        got = series(first)
        assert got["jmx_scrape_error"] == 0
        assert got['demo_requests_total{endpoint="api",zone="eu"}'] == 200
        assert got['demo_requests_total{endpoint="admin",zone="us"}'] == 1234567890123
        # Java prints 1.7e9 as 1.7E9, and the rule's $3 saw exactly that.
        assert got['demo_bytes_sent_1_7e9{endpoint="api"}'] == 1.7e9
        assert got['demo_status{status="running"}'] == 1
        assert got['demo_cache_hits{cache="users"}'] == 90
        assert got['demo_cache_hitratio{cache="users"}'] == 0.9
        assert got['demo_shard_size{cache="users",shard="s1"}'] == 100
        assert got['demo_shard_size{cache="users",shard="s2"}'] == 200
        assert got['demo_region_entries{region="eu"}'] == 5
        assert got['demo_region_entries{region="us"}'] == 7
        assert got["demo_quoted"] == 5
        assert got["jvm_heap_used_bytes"] > 0
        assert types(first)["demo_requests"] == "counter"
        assert types(first)["demo_cache_hits"] == "gauge"
        # The counter moves between scrapes; the failing attribute (Broken) was skipped.
        assert series(second)["demo_ticks_total"] > got["demo_ticks_total"]
        assert not any("broken" in k for k in got)

    run(body)


def test_default_rules_export_every_bean(demo_jvm: DemoJvm, tmp_path: Path) -> None:
    (source,) = jmx_sources([write_config(tmp_path, demo_jvm.url, body="")])

    async def body() -> None:
        try:
            got = series(await scrape(source))
        finally:
            await source.close()
        assert got["jmx_scrape_error"] == 0
        assert got["java_lang_Memory_HeapMemoryUsage_used"] > 0
        assert got["java_lang_Threading_ThreadCount"] > 0
        assert got['demo_app_Requests_Count{name="api",zone="eu"}'] == 200
        assert got['demo_app_Cache_Shards_evictions{name="users",shard="s2"}'] == 2
        assert got['demo_app_Regions_Entries{key="us"}'] == 7
        assert got["demo_app_Regions_Busiest_requests"] == 7

    run(body)


def test_jvm_down_is_a_scrape_error_not_an_exception(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/jolokia"
    (source,) = jmx_sources([write_config(tmp_path, url)])

    async def body() -> None:
        try:
            got = series(await scrape(source))
        finally:
            await source.close()
        assert got["jmx_scrape_error"] == 1
        assert not any(k.startswith("demo_") for k in got)
        assert "jmx_scrape_duration_seconds" in got

    run(body)


def test_jvm_restart_is_survived(start_jvm: Callable[..., DemoJvm], tmp_path: Path) -> None:
    jvm = start_jvm()
    (source,) = jmx_sources([write_config(tmp_path, jvm.url)])

    async def body() -> None:
        try:
            before = series(await scrape(source))
            jvm.stop()
            during = series(await scrape(source))
            await asyncio.to_thread(jvm.start)
            after = series(await scrape(source))
        finally:
            await source.close()
        assert before["jmx_scrape_error"] == 0 and before["demo_ticks_total"] >= 1
        assert during["jmx_scrape_error"] == 1 and "demo_ticks_total" not in during
        assert after["jmx_scrape_error"] == 0
        assert after['demo_requests_total{endpoint="api",zone="eu"}'] == 200
        # A new JVM: its counter started again.
        assert after["demo_ticks_total"] <= before["demo_ticks_total"] + 1

    run(body)


class FakeServer:
    """One-shot HTTP answers on loopback: a status and body, or silence past the timeout."""

    def __init__(self, status: int = 200, body: bytes = b"[]", delay: float = 0.0) -> None:
        self.status, self.body, self.delay = status, body, delay
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jolokia"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            self.requests.append(head + await reader.readexactly(length))
            await asyncio.sleep(self.delay)
            writer.write(
                b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (self.status, len(self.body), self.body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _scrape_fake(tmp_path: Path, server: FakeServer, extra: str = "") -> dict[str, float]:
    result: dict[str, float] = {}

    async def body() -> None:
        async with server:
            (source,) = jmx_sources([write_config(tmp_path, server.url, body=extra)])
            try:
                result.update(series(await scrape(source)))
            finally:
                await source.close()

    run(body)
    return result


def test_http_error_is_a_scrape_error(tmp_path: Path) -> None:
    got = _scrape_fake(tmp_path, FakeServer(status=500, body=b"oops"))
    assert got["jmx_scrape_error"] == 1


def test_malformed_json_is_a_scrape_error(tmp_path: Path) -> None:
    got = _scrape_fake(tmp_path, FakeServer(body=b'[{"status": 200, "value": {'))
    assert got["jmx_scrape_error"] == 1


def test_jolokia_error_object_is_a_scrape_error(tmp_path: Path) -> None:
    got = _scrape_fake(tmp_path, FakeServer(body=b'{"status": 403, "error": "denied"}'))
    assert got["jmx_scrape_error"] == 1


def test_timeout_bounds_the_scrape(tmp_path: Path) -> None:
    start = time.monotonic()
    got = _scrape_fake(tmp_path, FakeServer(delay=10), extra="timeout: 0.5\n")
    assert got["jmx_scrape_error"] == 1
    assert time.monotonic() - start < 5


def test_basic_auth_is_sent_and_the_password_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeServer(status=401, body=b"")
    got = _scrape_fake(tmp_path, server, extra="username: mon\npassword: pa55word\n")
    assert got["jmx_scrape_error"] == 1
    token = base64.b64encode(b"mon:pa55word")
    assert b"Authorization: Basic " + token in server.requests[0]
    assert "jmx scrape" in caplog.text  # the failure was logged ...
    assert "pa55word" not in caplog.text  # ... without the password


def test_config_file_is_reloaded_when_it_changes(demo_jvm: DemoJvm, tmp_path: Path) -> None:
    path = write_config(tmp_path, demo_jvm.url)
    (source,) = jmx_sources([path])

    stamp = [time.time()]

    def rewrite(text: str) -> None:
        Path(path).write_text(f"jolokiaUrl: {demo_jvm.url}\n{text}")
        stamp[0] += 5  # always a newer mtime than the last, however coarse the clock
        os.utime(path, (stamp[0], stamp[0]))

    async def body() -> None:
        try:
            first = series(await scrape(source))
            rewrite("rules:\n- pattern: 'name=api.*><>Count'\n  name: reloaded\n")
            second = series(await scrape(source))
            rewrite("rules: [unclosed\n")
            third = series(await scrape(source))
        finally:
            await source.close()
        assert "demo_ticks_total" in first
        assert second["reloaded"] == 200 and "demo_ticks_total" not in second
        assert second["jmx_config_reload_success_total"] == 1
        # A broken file keeps the last good config and counts a failure.
        assert third["reloaded"] == 200
        assert third["jmx_config_reload_failure_total"] == 1

    run(body)


def test_two_jvms_are_told_apart_by_a_target_label(
    demo_jvm: DemoJvm, start_jvm: Callable[..., DemoJvm], tmp_path: Path
) -> None:
    other = start_jvm()
    rules = "rules:\n- pattern: 'name=api.*><>Count'\n  name: requests\n"
    paths = [
        write_config(tmp_path, demo_jvm.url, body=rules, name="orders.yml"),
        write_config(tmp_path, other.url, body="targetName: billing\n" + rules, name="b.yml"),
    ]
    (source,) = jmx_sources(paths)

    async def body() -> None:
        try:
            text = await scrape(source)
        finally:
            await source.close()
        got = series(text)
        assert got['requests{jmx_target="orders"}'] == 200
        assert got['requests{jmx_target="billing"}'] == 200
        assert got['jmx_scrape_error{jmx_target="orders"}'] == 0
        assert got['jmx_scrape_error{jmx_target="billing"}'] == 0
        assert text.count("# TYPE jmx_scrape_error ") == 1

    run(body)


def test_gc_info_tables_after_a_real_gc(demo_jvm: DemoJvm, tmp_path: Path) -> None:
    # Ask the JVM for a collection through Jolokia's exec, so LastGcInfo is filled in.
    request = urllib.request.Request(
        demo_jvm.url + "/",
        data=json.dumps(
            {"type": "exec", "mbean": "java.lang:type=Memory", "operation": "gc"}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert json.load(r)["status"] == 200
    body = "includeObjectNames: ['java.lang:type=GarbageCollector,*']\n"
    (source,) = jmx_sources([write_config(tmp_path, demo_jvm.url, body=body)])

    async def body_() -> None:
        try:
            got = series(await scrape(source))
        finally:
            await source.close()
        # The JDK registers "java.lang:name=MarkSweepCompact,type=GarbageCollector" (SerialGC):
        # the default name takes the first property, the pools become a "key" label.
        after_gc = [
            k
            for k in got
            if k.startswith("java_lang_MarkSweepCompact_LastGcInfo_memoryUsageAfterGc_used{")
        ]
        assert any('key="Tenured Gen"' in k for k in after_gc), sorted(got)[:40]
        assert all('type="GarbageCollector"' in k for k in after_gc)

    run(body_)
