"""The service images: non-root, small enough, and `docker run IMAGE --version` works."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from importlib.metadata import version

import pytest

SERVICES = ["git-sync", "redis-ambassador", "metrics-adapter"]


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_as_non_root_and_reports_version(
    service: str, project_image: Callable[[str], str]
) -> None:
    tag = project_image(service)
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user and not user.startswith(("0", "root")), f"{tag} runs as {user!r}"
    done = subprocess.run(
        ["docker", "run", "--rm", "--read-only", "--cap-drop=ALL", tag, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert version("podpatterns") in done.stdout + done.stderr


# Arguments that start each long-running service without anything else around it (git-sync's
# stop is covered with a real remote in test_git_sync_container.py).
STANDALONE_ARGS = {
    "redis-ambassador": ["--listen=0.0.0.0:6379", "--master=127.0.0.1:1", "--http-bind=:9121"],
    "metrics-adapter": [],
}


@pytest.mark.parametrize("service", sorted(STANDALONE_ARGS))
def test_sigterm_stops_the_container_promptly_and_cleanly(
    service: str, project_image: Callable[[str], str]
) -> None:
    tag = project_image(service)
    container = subprocess.run(
        ["docker", "run", "-d", "--read-only", "--cap-drop=ALL", tag, *STANDALONE_ARGS[service]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        _wait_for_log_line(container, timeout=20)
        started = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "10", container], capture_output=True, check=True)
        took = time.monotonic() - started
        exit_code = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        logs = subprocess.run(
            ["docker", "logs", container], capture_output=True, text=True, check=True
        ).stderr
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    assert took < 2.0, f"{service} took {took:.1f}s to stop"
    assert exit_code == "0", logs
    assert "Traceback" not in logs


def _wait_for_log_line(container: str, timeout: float) -> None:
    """Wait until the service has logged something: it is up and has installed its handlers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        if logs.stderr.strip():
            return
        time.sleep(0.2)
    pytest.fail(f"container {container[:12]} logged nothing within {timeout}s")


def test_adapter_image_reports_healthy_on_its_default_port(
    project_image: Callable[[str], str],
) -> None:
    tag = project_image("metrics-adapter")
    container = subprocess.run(
        ["docker", "run", "-d", "--read-only", "--health-interval=1s", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            time.sleep(0.5)
            status = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    assert status == "healthy"
