"""The real ``metrics-adapter`` process on free loopback ports, for the integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.fixtures.ports import free_port


def adapter_program() -> str:
    """The console script installed next to the interpreter running the tests."""
    program = Path(sys.executable).parent / "metrics-adapter"
    if not program.exists():
        raise RuntimeError(f"{program} is missing: run `make venv`")
    return str(program)


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP, since StatsD listens on both with one number."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


@dataclass
class Adapter:
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    statsd_port: int = field(default_factory=free_udp_tcp_port)
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log(self) -> str:
        return (self.workdir / "adapter.log").read_text(errors="replace")

    def start(self) -> Adapter:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            adapter_program(),
            f"--statsd.listen-udp=127.0.0.1:{self.statsd_port}",
            f"--statsd.listen-tcp=127.0.0.1:{self.statsd_port}",
            f"--web.listen-address=127.0.0.1:{self.web_port}",
            *self.extra_args,
        ]
        log = open(self.workdir / "adapter.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"metrics-adapter exited {self.process.returncode}: {self.log}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"metrics-adapter not ready: {self.log}")

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def send_udp(self, payload: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", self.statsd_port))

    def metrics_text(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def samples(self) -> dict[str, float]:
        out = {}
        for line in self.metrics_text().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def wait_for(self, series: str, value: float | None = None, timeout: float = 10) -> float:
        """Poll /metrics until ``series`` exists (with ``value``, if given); return its value."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.samples().get(series)
            if seen is not None and (value is None or seen == value):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"{series} = {seen}, wanted {value}")
