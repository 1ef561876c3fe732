"""The ambassador image as a sidecar: a Redis master + 2 replicas on a Docker network, an app
container, and the ambassador in the app's network namespace (a pod). The app talks to
localhost:6379 only; reads must land on the replicas, writes on the master."""

from __future__ import annotations

import hashlib
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fixtures.redis_nodes import RedisContainers
from tests.fixtures.requirements import require_docker

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = "images/redis-ambassador.Dockerfile"


def _source_digest() -> str:
    """A tag that follows the code, so this test never runs an image built from older code."""
    digest = hashlib.sha256()
    paths = [REPO_ROOT / DOCKERFILE, REPO_ROOT / "pyproject.toml"]
    paths += sorted((REPO_ROOT / "ambassadors").rglob("*.py"))
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def ambassador_image() -> str:
    require_docker()
    tag = f"podpatterns/redis-ambassador:test-{_source_digest()}"
    subprocess.run(
        ["docker", "build", "-q", "-f", DOCKERFILE, "-t", tag, "."],
        cwd=REPO_ROOT, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return tag


@pytest.fixture
def pod(redis_containers: RedisContainers, ambassador_image: str) -> Iterator[tuple[Any, int]]:
    """(app container, host port of the ambassador's /metrics); both stopped afterwards."""
    from testcontainers.core.container import DockerContainer

    app = (
        DockerContainer("redis:7")  # the "app": a shell with redis-cli
        .with_command("sleep 600")
        .with_exposed_ports(9121)
        .with_kwargs(network=redis_containers.network)
    )
    app.start()
    sidecar = None
    try:
        replicas = [f"--replica {alias}:6379" for alias in redis_containers.replica_aliases]
        sidecar = (
            DockerContainer(ambassador_image)
            .with_command(
                " ".join(
                    [
                        "--listen 127.0.0.1:6379",
                        f"--master {redis_containers.master_alias}:6379",
                        *replicas,
                        "--read-policy prefer-replica",
                        "--http-bind 0.0.0.0:9121",
                    ]
                )
            )
            .with_kwargs(network_mode=f"container:{app.get_wrapped_container().id}")
        )
        sidecar.start()
        deadline = time.monotonic() + 30
        while app.exec("redis-cli -p 6379 PING").output.strip() != b"PONG":
            assert time.monotonic() < deadline, sidecar.get_logs()
            time.sleep(0.2)
        yield app, int(app.get_exposed_port(9121))
    finally:
        if sidecar is not None:
            sidecar.stop()  # sidecar first: it lives in the app's namespace
        app.stop()


def calls(port: int, command: str) -> int:
    stats = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).info("commandstats")
    entry = stats.get(f"cmdstat_{command}")
    return int(entry["calls"]) if entry else 0


@pytest.mark.docker
def test_app_in_the_pod_reads_from_replicas_and_writes_to_the_master(
    redis_containers: RedisContainers, pod: tuple[Any, int]
) -> None:
    app, metrics_port = pod
    ports = [redis_containers.master_port, *redis_containers.replica_ports]
    for port in ports:
        redis.Redis(host="127.0.0.1", port=port).config_resetstat()
    script = (
        "for i in $(seq 1 40); do redis-cli -p 6379 SET key$i v$i >/dev/null; done; "
        "redis-cli -p 6379 WAIT 2 2000 >/dev/null; sleep 0.3; "
        "for i in $(seq 1 40); do redis-cli -p 6379 GET key$i; done"
    )
    result = app.exec(["sh", "-c", script])
    assert result.exit_code == 0
    assert result.output.decode().split() == [f"v{i}" for i in range(1, 41)]
    master, *replicas = ports
    assert calls(master, "set") == 40
    assert calls(master, "get") == 0
    assert sum(calls(port, "get") for port in replicas) == 40
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert 'redis_ambassador_commands_total{result="ok",route="replica"}' in text
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/ready", timeout=5) as reply:
        assert reply.status == 200
