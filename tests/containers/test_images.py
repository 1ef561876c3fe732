"""The service images: non-root, small enough, and `docker run IMAGE --version` works."""

from __future__ import annotations

import subprocess
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
