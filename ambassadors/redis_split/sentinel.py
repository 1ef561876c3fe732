"""Sentinel discovery: where the master and its replicas are, followed as Sentinel moves them.

Three triggers re-resolve: a ``+switch-master`` event (pushed by any Sentinel), a request from
the data path (a master answered ``-READONLY`` or reports itself a replica), and a slow poll
that catches anything the events missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .backends import Backends
from .control import Address, ControlClient, ReplyError, Value, decode
from .resp import ReplyScanner, encode_command

log = logging.getLogger("redis_ambassador.sentinel")

_POLL = 1.0


class SentinelError(Exception):
    pass


def _pairs(entry: Value) -> dict[bytes, bytes]:
    if not isinstance(entry, list):
        return {}
    flat = [v for v in entry if isinstance(v, bytes)]
    return dict(zip(flat[::2], flat[1::2], strict=False))


class SentinelDiscovery:
    def __init__(self, sentinels: tuple[Address, ...], name: str, timeout: float) -> None:
        self._sentinels = sentinels
        self._name = name
        self._clients = [ControlClient(a, timeout=timeout) for a in sentinels]
        self._switched = asyncio.Event()

    async def resolve(self) -> tuple[Address, list[Address]]:
        """Ask each Sentinel in turn; the first that knows the master answers."""
        errors = []
        for client in self._clients:
            try:
                master = await client.call("SENTINEL", "get-master-addr-by-name", self._name)
                if not isinstance(master, list) or len(master) != 2:
                    errors.append(f"{client.address}: no master named {self._name!r}")
                    continue
                host, port = master
                assert isinstance(host, bytes) and isinstance(port, bytes)
                replicas_reply = await client.call("SENTINEL", "replicas", self._name)
                replicas = []
                if isinstance(replicas_reply, list):
                    for entry in replicas_reply:
                        fields = _pairs(entry)
                        flags = fields.get(b"flags", b"")
                        if any(bad in flags for bad in (b"s_down", b"o_down", b"disconnected")):
                            continue
                        if b"ip" in fields and b"port" in fields:
                            replicas.append(Address(fields[b"ip"].decode(), int(fields[b"port"])))
                return Address(host.decode(), int(port)), replicas
            except (OSError, TimeoutError, ConnectionError, AssertionError, ValueError) as exc:
                errors.append(f"{client.address}: {exc or type(exc).__name__}")
        raise SentinelError("; ".join(errors) or "no sentinel configured")

    async def follow(self, backends: Backends) -> None:
        """Keep ``backends`` pointed at the current master and replicas, forever."""
        watchers = [asyncio.create_task(self._watch(a)) for a in self._sentinels]
        try:
            while True:
                try:
                    master, replicas = await self.resolve()
                    backends.set_topology(master, replicas)
                except SentinelError as exc:
                    log.warning("sentinel resolution failed", extra={"reason": str(exc)})
                waits: list[asyncio.Task[bool]] = [
                    asyncio.create_task(self._switched.wait()),
                    asyncio.create_task(backends.resolve_requested.wait()),
                ]
                await asyncio.wait(waits, timeout=_POLL, return_when=asyncio.FIRST_COMPLETED)
                for task in waits:
                    task.cancel()
                self._switched.clear()
                backends.resolve_requested.clear()
        finally:
            for watcher in watchers:
                watcher.cancel()

    async def _watch(self, address: Address) -> None:
        """Subscribe to ``+switch-master`` on one Sentinel; reconnect when it goes away."""
        while True:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address.host, address.port), 2.0
                )
                writer.write(encode_command("SUBSCRIBE", "+switch-master"))
                buf = bytearray()
                scanner = ReplyScanner()
                while chunk := await reader.read(65536):
                    buf += chunk
                    while found := scanner.scan(buf, 0):
                        value, _ = decode(bytes(buf[found[0] : found[1]]))
                        del buf[: found[1]]
                        self._on_message(value)
            except (OSError, TimeoutError, ConnectionError, ValueError):
                pass
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(1.0)

    def _on_message(self, value: Value) -> None:
        if isinstance(value, ReplyError) or not isinstance(value, list) or len(value) != 3:
            return
        kind, _, payload = value
        if kind == b"message" and isinstance(payload, bytes):
            with contextlib.suppress(ValueError, IndexError):
                if payload.split()[0].decode() == self._name:
                    log.info("sentinel +switch-master", extra={"event": payload.decode()})
                    self._switched.set()
