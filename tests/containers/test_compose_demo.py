"""The README's main command: the three demo pods come up with `docker compose up`, answer as a
new user would see them, and `docker compose down` leaves nothing running."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.ports import free_port
from tests.fixtures.requirements import require_docker, require_program

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Demo:
    project: str
    web_port: int
    git_port: int
    cache_port: int
    prometheus_port: int

    def get(self, port: int, path: str, timeout: float = 5) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            body: bytes = reply.read()
            return body.decode()

    def prometheus_query(self, query: str) -> list[dict[str, object]]:
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        reply = json.loads(self.get(self.prometheus_port, path))
        assert reply["status"] == "success", reply
        result: list[dict[str, object]] = reply["data"]["result"]
        return result

    def compose(self, *args: str) -> str:
        done = subprocess.run(
            ["docker", "compose", "-p", self.project, *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        return done.stdout


def eventually(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``check`` until it returns something truthy without raising."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as error:
            last = error
        time.sleep(1)
    pytest.fail(f"{what} did not happen within {timeout:.0f}s (last: {last!r})")


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    require_docker()
    require_program("git")
    from testcontainers.compose import DockerCompose

    demo = Demo(
        project=f"pp-test-{uuid.uuid4().hex[:8]}",
        web_port=free_port(),
        git_port=free_port(),
        cache_port=free_port(),
        prometheus_port=free_port(),
    )
    env_file = Path(f"/tmp/{demo.project}.env")
    env_file.write_text(
        f"COMPOSE_PROJECT_NAME={demo.project}\n"
        f"WEB_PORT={demo.web_port}\n"
        f"GIT_SERVER_PORT={demo.git_port}\n"
        f"CACHE_APP_PORT={demo.cache_port}\n"
        f"PROMETHEUS_PORT={demo.prometheus_port}\n"
    )
    compose = DockerCompose(
        REPO_ROOT, compose_file_name="compose.yaml", build=True, wait=True, env_file=str(env_file)
    )
    try:
        compose.start()
        yield demo
    finally:
        compose.stop()
        env_file.unlink(missing_ok=True)


def test_site_is_served_and_follows_a_push(demo: Demo, tmp_path: Path) -> None:
    page = eventually(lambda: demo.get(demo.web_port, "/"), 60, "the site being served")
    assert "Hello from the sidecar pattern" in str(page)

    clone = tmp_path / "site"
    remote = f"git://127.0.0.1:{demo.git_port}/site.git"
    subprocess.run(["git", "clone", "-q", remote, str(clone)], check=True, timeout=60)
    index = clone / "index.html"
    index.write_text(index.read_text().replace("version 1", "version 2"))
    ident = ["-c", "user.name=test", "-c", "user.email=test@podpatterns.invalid"]
    subprocess.run(["git", *ident, "-C", str(clone), "commit", "-qam", "v2"], check=True)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "main"], check=True)
    eventually(
        lambda: "version 2" in demo.get(demo.web_port, "/"), 30, "the pushed version being served"
    )


def test_cache_app_reads_are_served_by_replicas(demo: Demo) -> None:
    def app_has_worked() -> bool:
        status = json.loads(demo.get(demo.cache_port, "/status"))
        return bool(status["writes"] > 20 and status["reads"] > 80)

    def gets_served_by(node: str) -> int:
        stats = demo.compose("exec", "-T", node, "redis-cli", "info", "commandstats")
        for line in stats.splitlines():
            if line.startswith("cmdstat_get:calls="):
                return int(line.split("=")[1].split(",")[0])
        return 0

    eventually(app_has_worked, 60, "the cache app writing and reading through the ambassador")
    # The ambassador learns the replicas from Sentinel, which discovers them a few seconds after
    # start; from then on the app's reads reach both replicas.
    for replica in ("redis-replica-1", "redis-replica-2"):
        eventually(lambda r=replica: gets_served_by(r) > 0, 60, f"{replica} serving GETs")
    master_stats = demo.compose("exec", "-T", "redis-master", "redis-cli", "info", "commandstats")
    assert "cmdstat_set:" in master_stats
    status = json.loads(demo.get(demo.cache_port, "/status"))
    assert status["errors"] == 0, status["last_error"]


def test_prometheus_scrapes_every_target(demo: Demo) -> None:
    def all_targets_up() -> bool:
        results = demo.prometheus_query("up")
        jobs = {str(r["metric"]["job"]): r["value"][1] for r in results}  # type: ignore[index]
        return len(jobs) == 3 and all(value == "1" for value in jobs.values())

    eventually(all_targets_up, 90, "all Prometheus targets up")
    eventually(lambda: demo.prometheus_query("checkout_requests"), 60, "the app's StatsD series")
    eventually(lambda: demo.prometheus_query("git_sync_count_total"), 60, "git-sync's metrics")
    eventually(lambda: demo.prometheus_query("demo_requests_total"), 90, "the JVM's JMX series")
    eventually(lambda: demo.prometheus_query("jmx_scrape_error == 0"), 60, "a clean JMX scrape")
    eventually(
        lambda: demo.prometheus_query("nginx_http_requests_total"), 60, "nginx's stub_status"
    )
    eventually(lambda: demo.prometheus_query("redis_role_master == 1"), 60, "Redis INFO app stats")


def test_compose_down_leaves_nothing_running(demo: Demo) -> None:
    # Runs last in this module: the fixture's teardown does the real `down`; here we check that
    # a `down` of the project leaves no container behind, then bring it back for no one.
    assert demo.compose("ps", "-q").strip(), "the demo should be running before down"
    demo.compose("down", "--volumes", "--timeout", "10")
    leftovers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={demo.project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert leftovers == []
