"""The git-sync image in a pod-like setup: nginx and git-sync share a volume, git-sync follows a
repository served by a git daemon container, and a push shows up in nginx's response."""

from __future__ import annotations

import hashlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.docker_images import REPO_ROOT
from tests.fixtures.git_remote import GitRemote
from tests.fixtures.requirements import require_docker

pytestmark = pytest.mark.docker


def _source_digest() -> str:
    """A tag that changes with the code, so the test never runs a stale image (the ``:dev`` tag
    may have been built from another checkout on a shared machine). Unchanged code hits the
    build cache and costs about a second."""
    digest = hashlib.sha256()
    paths = [REPO_ROOT / "images" / "git-sync.Dockerfile", REPO_ROOT / "pyproject.toml"]
    paths += sorted((REPO_ROOT / "sidecars").rglob("*.py"))
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="module")
def git_sync_image() -> str:
    require_docker()
    tag = f"podpatterns/git-sync:test-{_source_digest()}"
    subprocess.run(
        ["docker", "build", "-q", "-f", "images/git-sync.Dockerfile", "-t", tag, "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    # Drop the tags of earlier code versions so repeated runs do not pile up images.
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "podpatterns/git-sync"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    stale = [
        name for name in listed if name.startswith("podpatterns/git-sync:test-") and name != tag
    ]
    if stale:
        subprocess.run(["docker", "rmi", *stale], capture_output=True, check=False)
    return tag


@pytest.fixture
def shared_volume() -> Iterator[str]:
    require_docker()
    name = f"git-sync-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "volume", "create", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", name], check=False, capture_output=True)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


def _wait_for_body(url: str, wanted: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        status, body = _get(url)
        if status == 200 and wanted in body:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not serve {wanted!r} within {timeout}s (last: {body!r})")


def _wait_for_status(url: str, wanted: int, timeout: float, containers: list[Any]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _get(url)[0] == wanted:
            return
        time.sleep(0.2)
    logs = [container.get_logs() for container in containers]
    raise AssertionError(f"{url} did not answer {wanted} within {timeout}s; logs: {logs}")


def test_a_push_shows_up_in_nginx(
    git_remote: GitRemote, git_sync_image: str, shared_volume: str
) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    started: list[DockerContainer] = []
    with Network() as network:
        try:
            # The git server: git daemon from the git-sync image itself (it has git; the real
            # python/debian images do not), as root so the host-owned repository is trusted.
            server = (
                DockerContainer(git_sync_image)
                .with_kwargs(entrypoint=["git"], user="0:0")
                .with_volume_mapping(str(git_remote.bare), "/srv/site.git", "ro")
                .with_command(
                    "daemon --export-all --reuseaddr --base-path=/srv --listen=0.0.0.0 /srv"
                )
                .with_network(network)
                .with_network_aliases("git-server")
            )
            server.start()
            started.append(server)
            # git-sync first: a fresh named volume takes the image's /git ownership (uid 65533).
            sync = (
                DockerContainer(git_sync_image)
                .with_volume_mapping(shared_volume, "/git", "rw")
                .with_command(
                    "--repo=git://git-server/site.git --root=/git --link=current --period=1s "
                    "--http-bind=:8080 --http-metrics --max-failures=-1"
                )
                .with_network(network)
                .with_exposed_ports(8080)
            )
            sync.start()
            started.append(sync)
            # Docker copies an image's files into an empty named volume on first mount: nginx
            # must not mount it before git-sync has written it (compose: `volume: {nocopy: true}`).
            sync_url = f"http://127.0.0.1:{sync.get_exposed_port(8080)}"
            _wait_for_status(sync_url + "/", 200, timeout=60, containers=started)
            nginx = (
                DockerContainer("nginx:stable")
                .with_volume_mapping(shared_volume, "/usr/share/nginx/html", "ro")
                .with_exposed_ports(80)
            )
            nginx.start()
            started.append(nginx)

            page = f"http://127.0.0.1:{nginx.get_exposed_port(80)}/current/index.html"
            _wait_for_body(page, "<h1>first</h1>", timeout=30)
            git_remote.commit({"index.html": "<h1>pushed</h1>\n"})
            _wait_for_body(page, "<h1>pushed</h1>", timeout=30)
            metrics = _get(sync_url + "/metrics")[1]
            assert 'git_sync_count_total{status="success"} 2.0' in metrics
            uid = sync.exec(["id", "-un"]).output.decode().strip()
            assert uid == "git-sync"
            # SIGTERM (docker stop) through tini: a prompt, clean exit, not the 10 s kill.
            wrapped = sync.get_wrapped_container()
            began = time.monotonic()
            wrapped.stop(timeout=10)
            assert time.monotonic() - began < 5
            wrapped.reload()
            assert wrapped.attrs["State"]["ExitCode"] == 0
        finally:
            for container in reversed(started):
                container.stop()


def test_as_pid1_without_tini_it_forwards_sigterm(git_sync_image: str) -> None:
    """Started as PID 1 (no tini), git-sync re-runs itself as a child like upstream, forwards
    SIGTERM to it and exits cleanly."""
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(git_sync_image)
        .with_kwargs(entrypoint=["/opt/podpatterns/bin/git-sync"])
        .with_command("--repo=file:///nowhere.git --root=/tmp/r --period=100ms --max-failures=-1")
    )
    container.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"error syncing repo" not in container.get_logs()[1]:
            time.sleep(0.2)
        stderr = container.get_logs()[1].decode()
        assert "detected pid 1, running init handler" in stderr
        assert "error syncing repo" in stderr
        wrapped = container.get_wrapped_container()
        began = time.monotonic()
        wrapped.stop(timeout=10)
        assert time.monotonic() - began < 5
        wrapped.reload()
        assert wrapped.attrs["State"]["ExitCode"] == 0
    finally:
        container.stop()
