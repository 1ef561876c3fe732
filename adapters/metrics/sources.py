"""StatsD listeners: UDP, TCP and unixgram, on the asyncio loop (uvloop when installed).

Each listener only frames bytes into lines and hands them to the ingest stage in batches (one
datagram, or one TCP read); it never stops on bad input. Framing is upstream's: datagrams split on
``\\n``; TCP lines end in ``\\n`` or ``\\r\\n`` and a line longer than upstream's 4 KiB read
buffer closes the connection and is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from adapters.metrics.errors import ConfigError
from adapters.metrics.telemetry import Telemetry

log = logging.getLogger("metrics-adapter")

# Upstream reads TCP with a bufio.Reader of 4096 bytes: a longer line is "too long".
TCP_MAX_LINE = 4096
_UDP_MAX = 65535
_DRAIN_MAX = 64  # datagrams read per wakeup at most, so one socket cannot starve the others


def split_host_port(address: str, flag: str) -> tuple[str, int]:
    """Go's ``host:port`` (``:9125``, ``127.0.0.1:9125``, ``[::1]:9125``) → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"{flag}: invalid address {address!r} (want host:port, e.g. :9125)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _udp_socket(host: str, port: int, read_buffer: int, flag: str) -> socket.socket:
    if host:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as err:
            raise ConfigError(f"{flag}: cannot resolve {host!r}: {err.strerror}") from err
        candidates: list[tuple[socket.AddressFamily, Any]] = [(infos[0][0], infos[0][4])]
    else:
        # ":9125" means every interface, IPv4 and IPv6, as in Go.
        candidates = [(socket.AF_INET6, ("::", port)), (socket.AF_INET, ("0.0.0.0", port))]
    last_error: OSError | None = None
    for family, sockaddr in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as err:  # e.g. no IPv6 in this kernel: try the next family
            last_error = err
            continue
        try:
            if family == socket.AF_INET6 and not host:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if read_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, read_buffer)
            sock.bind(sockaddr)
        except OSError as err:
            sock.close()
            last_error = err
            continue
        sock.setblocking(False)
        return sock
    raise ConfigError(f"{flag}: cannot listen on {host}:{port}: {last_error}")


class DatagramListener:
    """Reads a datagram socket straight from the event loop's readiness callback.

    Each wakeup drains every datagram already queued (up to ``_DRAIN_MAX``) and hands them to the
    ingest stage as one batch, so its per-batch work is paid once for many packets under load,
    and a quiet socket still delivers each packet as soon as it arrives.
    """

    def __init__(
        self,
        sock: socket.socket,
        on_datagrams: Callable[[list[bytes]], None],
        count: Callable[[int], None],
    ) -> None:
        self.sock = sock
        self.on_datagrams = on_datagrams
        self.count = count
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._ready)

    def _ready(self) -> None:
        recv = self.sock.recv
        batch = []
        for _ in range(_DRAIN_MAX):
            try:
                batch.append(recv(_UDP_MAX))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # ICMP errors and the like surface here on some kernels; the socket stays open.
                break
        if not batch:
            return
        self.count(len(batch))
        try:
            self.on_datagrams(batch)
        except Exception:
            # A bug must cost one batch, never the listener.
            log.exception("failed to process datagrams")

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def listen_udp(
    address: str,
    read_buffer: int,
    on_datagrams: Callable[[list[bytes]], None],
    telemetry: Telemetry,
) -> DatagramListener:
    host, port = split_host_port(address, "--statsd.listen-udp")
    sock = _udp_socket(host, port, read_buffer, "--statsd.listen-udp")

    def count(packets: int) -> None:
        telemetry.udp_packets += packets

    return DatagramListener(sock, on_datagrams, count)


async def listen_unixgram(
    path: str,
    mode: str,
    read_buffer: int,
    on_datagrams: Callable[[list[bytes]], None],
    telemetry: Telemetry,
) -> DatagramListener:
    try:
        permissions = int(mode, 8)
    except ValueError as err:
        raise ConfigError(f"--statsd.unixsocket-mode: {mode!r} is not an octal mode") from err
    if os.path.lexists(path):
        raise ConfigError(f"--statsd.listen-unixgram: unixgram socket {path} already exists")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        if read_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, read_buffer)
        sock.bind(path)
        os.chmod(path, permissions)
    except OSError as err:
        sock.close()
        raise ConfigError(f"--statsd.listen-unixgram: cannot listen on {path}: {err}") from err
    sock.setblocking(False)

    def count(packets: int) -> None:
        telemetry.unixgram_packets += packets

    return DatagramListener(sock, on_datagrams, count)


def remove_unix_socket(path: str) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


async def listen_tcp(
    address: str, on_lines: Callable[[list[str]], None], telemetry: Telemetry
) -> asyncio.Server:
    host, port = split_host_port(address, "--statsd.listen-tcp")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        telemetry.tcp_connections += 1
        pending = b""
        try:
            while True:
                try:
                    chunk = await reader.read(65536)
                except OSError:
                    telemetry.tcp_errors += 1
                    break
                if not chunk:
                    if pending:
                        _deliver([pending], on_lines, telemetry)
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                if any(len(line) >= TCP_MAX_LINE for line in complete) or (
                    len(pending) >= TCP_MAX_LINE
                ):
                    # Upstream delivers the lines before the long one, then hangs up.
                    good = []
                    for line in complete:
                        if len(line) >= TCP_MAX_LINE:
                            break
                        good.append(line)
                    _deliver(good, on_lines, telemetry)
                    telemetry.tcp_too_long_lines += 1
                    break
                if complete:
                    _deliver(complete, on_lines, telemetry)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    try:
        return await asyncio.start_server(
            connection, host=host or None, port=port, reuse_address=True
        )
    except OSError as err:
        raise ConfigError(f"--statsd.listen-tcp: cannot listen on {address}: {err}") from err


def _deliver(raw: list[bytes], on_lines: Callable[[list[str]], None], telemetry: Telemetry) -> None:
    lines = []
    for line in raw:
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            telemetry.lines += 1
            telemetry.sample_error("malformed_line")
    if lines:
        try:
            on_lines(lines)
        except Exception:
            log.exception("failed to process TCP lines")
