"""The metrics-adapter image scraped by a real Prometheus container on a private Docker network:
StatsD sent to the adapter container comes back from Prometheus' query API."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.ports import free_port
from tests.fixtures.requirements import require_docker

MAPPING = """
mappings:
- match: shop.*.orders
  name: shop_orders_total
  labels:
    region: "$1"
"""

PROMETHEUS = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: metrics-adapter
  static_configs:
  - targets: ["metrics-adapter:9102"]
"""


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


@pytest.fixture
def adapter_image(project_image: Callable[[str], str]) -> str:
    # A developer can point the test at an image built from their own checkout, without
    # retagging the shared ":dev" image other worktrees use; CI builds ":dev" with `make images`.
    override = os.environ.get("PODPATTERNS_METRICS_ADAPTER_IMAGE")
    if override:
        require_docker()
        return override
    return project_image("metrics-adapter")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    # The containers run as non-root users: the mounted files must be world-readable.
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "mapping.yml").write_text(textwrap.dedent(MAPPING))
    (directory / "prometheus.yml").write_text(textwrap.dedent(PROMETHEUS))
    for path in (tmp_path, directory, *directory.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def test_prometheus_scrapes_the_adapter_container(adapter_image: str, config_dir: Path) -> None:
    from testcontainers.core.network import Network

    with Network() as network:
        containers: list[Any] = []
        try:
            _scrape_through_prometheus(adapter_image, config_dir, network, containers)
        finally:
            # Before the network goes: Docker refuses to remove a network still in use.
            for container in reversed(containers):
                container.stop()


def _scrape_through_prometheus(
    adapter_image: str, config_dir: Path, network: Any, containers: list[Any]
) -> None:
    from testcontainers.core.container import DockerContainer

    udp_port = free_port(socket.SOCK_DGRAM)
    adapter = (
        DockerContainer(adapter_image)
        .with_command(
            "--statsd.listen-udp=:9125 --statsd.listen-tcp=:9125 --web.listen-address=:9102 "
            "--statsd.mapping-config=/etc/metrics-adapter/mapping.yml"
        )
        .with_volume_mapping(str(config_dir), "/etc/metrics-adapter", "ro")
        .with_network(network)
        .with_network_aliases("metrics-adapter")
        .with_exposed_ports(9102)
        .with_bind_ports("9125/udp", udp_port)
    )
    adapter.start()
    containers.append(adapter)
    adapter_url = f"http://127.0.0.1:{adapter.get_exposed_port(9102)}"
    _wait_http(f"{adapter_url}/-/ready")

    prometheus = (
        DockerContainer("prom/prometheus:latest")
        .with_volume_mapping(
            str(config_dir / "prometheus.yml"), "/etc/prometheus/prometheus.yml", "ro"
        )
        .with_network(network)
        .with_exposed_ports(9090)
    )
    prometheus.start()
    containers.append(prometheus)
    prometheus_url = f"http://127.0.0.1:{prometheus.get_exposed_port(9090)}"
    _wait_http(f"{prometheus_url}/-/ready")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(3):
            sock.sendto(b"shop.eu.orders:2|c\nshop.queue:7|g|#env:demo", ("127.0.0.1", udp_port))
    deadline = time.monotonic() + 60
    result: list[Any] = []
    while time.monotonic() < deadline:
        response = requests.get(
            f"{prometheus_url}/api/v1/query",
            params={"query": 'shop_orders_total{job="metrics-adapter"}'},
            timeout=5,
        )
        result = response.json()["data"]["result"]
        if result and float(result[0]["value"][1]) == 6:
            break
        time.sleep(0.5)
    assert result, "Prometheus never saw shop_orders_total"
    assert result[0]["metric"]["region"] == "eu"
    assert float(result[0]["value"][1]) == 6
    queue = requests.get(
        f"{prometheus_url}/api/v1/query", params={"query": "shop_queue"}, timeout=5
    ).json()["data"]["result"]
    assert queue[0]["metric"]["env"] == "demo"
    assert float(queue[0]["value"][1]) == 7
    targets = requests.get(f"{prometheus_url}/api/v1/targets", timeout=5).json()
    assert [t["health"] for t in targets["data"]["activeTargets"]] == ["up"]

    # SIGTERM through tini: a clean, prompt exit, not the 10 s kill.
    wrapped = adapter.get_wrapped_container()
    began = time.monotonic()
    wrapped.stop(timeout=10)
    assert time.monotonic() - began < 5
    wrapped.reload()
    assert wrapped.attrs["State"]["ExitCode"] == 0
