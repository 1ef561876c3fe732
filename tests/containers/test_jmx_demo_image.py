"""The jmx-demo image: a non-root JVM whose Jolokia the demo's JMX config scrapes as shipped."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from testcontainers.core.container import DockerContainer

from adapters.metrics.jmx.config import parse_config
from adapters.metrics.jmx.source import JmxSource
from tests.fixtures.exposition import render, series

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.docker


def test_demo_config_scrapes_the_demo_image(project_image: Callable[[str], str]) -> None:
    image = project_image("jmx-demo")
    container = DockerContainer(image).with_exposed_ports(8778)
    with container:
        host_port = container.get_exposed_port(8778)
        url = f"http://127.0.0.1:{host_port}/jolokia"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/version", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        user = container.exec(["id", "-u"]).output.decode().strip()
        assert user != "0"

        shipped = (REPO / "demo" / "metrics" / "jmx.yml").read_text()
        assert "jolokiaUrl: http://jmx-app:8778/jolokia" in shipped
        config = parse_config(shipped.replace("http://jmx-app:8778/jolokia", url))
        source = JmxSource("demo/metrics/jmx.yml", config)

        async def scrape() -> dict[str, float]:
            try:
                return series(render(await source.collect()))
            finally:
                await source.close()

        got = asyncio.run(scrape())
    assert got["jmx_scrape_error"] == 0
    assert got['demo_requests_total{endpoint="api",zone="eu"}'] == 200
    assert got['demo_latency_seconds{endpoint="api",zone="eu"}'] == pytest.approx(0.0125)
    assert got['demo_cache_shard_entries{cache="users",shard="s1"}'] == 100
    assert got['jvm_memory_used_bytes{area="Heap"}'] > 0
