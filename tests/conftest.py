"""Shared fixtures. Each fixture family lives in its own module under tests/fixtures/."""

from __future__ import annotations

import os

# testcontainers reads these at import time: the Ryuk reaper image cannot be pulled here, and the
# containers are reached through loopback. Tests stop what they start.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.git_remote",
    "tests.fixtures.redis_nodes",
    "tests.fixtures.docker_images",
    "tests.fixtures.jvm",
    "tests.fixtures.nginx",
    "tests.fixtures.podman",
    "tests.integration.git_sync_process",
]
