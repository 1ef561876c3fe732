"""One forwarding connection to a Redis node: bytes out, whole replies back, nothing decoded."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .resp import PUSH, ReplyScanner

if TYPE_CHECKING:
    from .backends import Node

_READ_CHUNK = 256 * 1024
# Consumed bytes are dropped from the front of the buffer once this many have piled up (or at
# once when the buffer is fully consumed), so a long pipeline does not copy on every reply.
_COMPACT_AT = 256 * 1024


class Upstream:
    """A connection leased by one session; replies come back in the order commands were sent."""

    __slots__ = ("_buf", "_pos", "_reader", "_scanner", "_writer", "closed", "generation", "node")

    def __init__(
        self, node: Node, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.node = node
        self.generation = node.generation
        self._reader = reader
        self._writer = writer
        self._buf = bytearray()
        self._pos = 0
        self._scanner = ReplyScanner()
        self.closed = False

    @property
    def stale(self) -> bool:
        """Closed, or opened to an address the node no longer has (e.g. after a failover)."""
        return self.closed or self.generation != self.node.generation or self._reader.at_eof()

    def send(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise ConnectionError(f"connection to {self.node.address} is closed")
        self._writer.write(data)

    def try_reply(self) -> bytes | None:
        """The next complete reply if it is already buffered; never waits."""
        found = self._scanner.scan(self._buf, self._pos)
        if found is None:
            return None
        start, end = found
        reply = bytes(self._buf[start:end])
        if end == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif end >= _COMPACT_AT:
            del self._buf[:end]
            self._pos = 0
        else:
            self._pos = end
        return reply

    def buffered_reply_is_push(self) -> bool:
        return self._pos < len(self._buf) and self._buf[self._pos] == PUSH

    async def read_more(self) -> None:
        """Wait for more bytes; ConnectionError when the node closed the connection."""
        if self.closed:
            raise ConnectionError(f"connection to {self.node.address} is closed")
        chunk = await self._reader.read(_READ_CHUNK)
        if not chunk:
            self.close()
            raise ConnectionError(f"{self.node.address} closed the connection")
        self._buf += chunk

    def take_buffered(self) -> bytes:
        """Everything received but not yet handed out (for pass-through mode)."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    async def read_raw(self) -> bytes:
        return await self._reader.read(_READ_CHUNK)

    async def drain(self) -> None:
        await self._writer.drain()

    @property
    def idle_clean(self) -> bool:
        """Nothing buffered: safe to hand to another session."""
        return not self.closed and self._pos == len(self._buf)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()
