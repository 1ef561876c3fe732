"""``--statsd.relay.address``: forward every received line, unmodified, to another StatsD over UDP.

As upstream does: lines are packed into datagrams of at most ``--statsd.relay.packet-length``
bytes, and a partly filled datagram is sent at least once a second. Sending never blocks or fails
the ingest path; errors are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from adapters.metrics.errors import ConfigError
from adapters.metrics.sources import split_host_port
from adapters.metrics.telemetry import Telemetry


class Relay:
    def __init__(self, address: str, packet_length: int, telemetry: Telemetry) -> None:
        host, port = split_host_port(address, "--statsd.relay.address")
        if packet_length <= 0:
            raise ConfigError("--statsd.relay.packet-length: must be positive")
        try:
            family, kind, proto, _, sockaddr = socket.getaddrinfo(
                host or "127.0.0.1", port, type=socket.SOCK_DGRAM
            )[0]
        except socket.gaierror as err:
            raise ConfigError(f"--statsd.relay.address: cannot resolve {host!r}") from err
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)
        self.target = sockaddr
        self.packet_length = packet_length
        self.telemetry = telemetry
        self._buffer: list[bytes] = []
        self._size = 0
        self._ticker: asyncio.Task[None] | None = None

    def __call__(self, lines: list[str]) -> None:
        for line in lines:
            if not line:
                continue
            data = line.encode("utf-8")
            if self._size and self._size + len(data) + 1 > self.packet_length:
                self.flush()
            self._buffer.append(data)
            self._size += len(data) + 1
            self.telemetry.relay_lines += 1

    def flush(self) -> None:
        if not self._buffer:
            return
        packet = b"\n".join(self._buffer) + b"\n"
        self._buffer.clear()
        self._size = 0
        try:
            self.sock.sendto(packet, self.target)
        except OSError:
            self.telemetry.relay_errors += 1

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.flush()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.flush()
        self.sock.close()
