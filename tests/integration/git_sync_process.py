"""Running the real ``git-sync`` console script as a child process, and watching what a user
would watch: the published link, the files, the logs, the HTTP endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.fixtures.processes import stop_process

GIT_SYNC = str(Path(sys.executable).with_name("git-sync"))


class GitSync:
    def __init__(
        self,
        args: Sequence[str],
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = workdir / f"git-sync-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITSYNC_", "GIT_"))}
        self.process = subprocess.Popen(
            [GIT_SYNC, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**base_env, **(env or {})},
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def wait_exit(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15) -> int | None:
        status = stop_process(self.process, timeout)
        self._log.close()
        return status


def wait_for(
    condition: Callable[[], object], timeout: float = 20, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def published_hash(link: Path) -> str:
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return ""


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


Start = Callable[..., GitSync]


@pytest.fixture
def start_git_sync(tmp_path: Path) -> Iterator[Start]:
    """Start ``git-sync`` with the given flags (and env); every one started is stopped after."""
    started: list[GitSync] = []

    def start(*args: str, env: dict[str, str] | None = None) -> GitSync:
        process = GitSync(args, tmp_path, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
