"""App stats from real programs: nginx's stub_status page and Redis INFO, through the demo's
shipped config (demo/metrics/appstats.yml) with the addresses pointed at local processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from adapters.metrics.appstats import json_sources
from tests.fixtures.exposition import render, series
from tests.fixtures.nginx import Nginx
from tests.fixtures.ports import free_port
from tests.fixtures.redis_nodes import RedisNode

SHIPPED = Path(__file__).resolve().parents[2] / "demo" / "metrics" / "appstats.yml"


def _config(tmp_path: Path, nginx_url: str, redis_url: str) -> str:
    doc = yaml.safe_load(SHIPPED.read_text())
    urls = {"nginx": nginx_url, "redis": redis_url}
    for target in doc["targets"]:
        target["url"] = urls[target["name"]]
    path = tmp_path / "appstats.yml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _scrape(path: str) -> dict[str, float]:
    (source,) = json_sources([path])

    async def run() -> dict[str, float]:
        try:
            return series(render(await source.collect()))
        finally:
            await source.close()

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_nginx_and_redis_stats(nginx_stub_status: Nginx, tmp_path: Path) -> None:
    redis_node = RedisNode(port=free_port(), workdir=tmp_path / "redis")
    redis_node.start()
    try:
        client = redis_node.client()
        client.set("a", 1)
        client.set("b", 2, ex=600)
        for _ in range(3):
            nginx_stub_status.get()
        got = _scrape(
            _config(tmp_path, nginx_stub_status.status_url, f"redis://127.0.0.1:{redis_node.port}")
        )
    finally:
        redis_node.stop()

    assert got['appstats_scrape_error{target="nginx"}'] == 0
    assert got['appstats_scrape_error{target="redis"}'] == 0
    # 3 page loads and this scrape's own status request.
    assert got["nginx_http_requests_total"] >= 4
    assert got["nginx_connections_accepted_total"] >= 1
    assert got["nginx_connections_active"] >= 1
    assert got["nginx_connections_writing"] >= 1
    assert any(k.startswith("redis_up{version=") for k in got)
    assert got['redis_db_keys{db="db0"}'] == 2
    assert got['redis_db_expires{db="db0"}'] == 1
    assert got["redis_role_master"] == 1
    assert got["redis_connected_clients"] >= 1
    assert got["redis_memory_used_bytes"] > 0


def test_a_target_that_is_down_does_not_hide_the_others(
    nginx_stub_status: Nginx, tmp_path: Path
) -> None:
    got = _scrape(
        _config(tmp_path, nginx_stub_status.status_url, f"redis://127.0.0.1:{free_port()}")
    )
    assert got['appstats_scrape_error{target="redis"}'] == 1
    assert got['appstats_scrape_error{target="nginx"}'] == 0
    assert got["nginx_http_requests_total"] >= 1
