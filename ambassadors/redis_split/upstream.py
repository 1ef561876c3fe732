"""One forwarding connection to a Redis node: bytes out, whole replies back, nothing decoded.

An asyncio Protocol rather than a stream pair: replies are handled in the ``data_received``
callback, so forwarding a reply costs no task switch. Commands sent before the TCP connection
is up are queued, which lets the session route synchronously and connect lazily.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .resp import ReplyScanner

if TYPE_CHECKING:
    from .backends import Node

# Consumed bytes are dropped from the front of the buffer once this many have piled up (or at
# once when the buffer is fully consumed), so a long pipeline does not copy on every reply.
_COMPACT_AT = 256 * 1024


async def open_connection(
    protocol: asyncio.Protocol, host: str, port: int, timeout: float
) -> str | None:
    """Connect ``protocol`` to a node; the reason it could not, or None."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: protocol, host, port)
    except (OSError, TimeoutError) as exc:
        return f"cannot connect to {host}:{port}: {exc or type(exc).__name__}"
    return None


# Bytes sent before the connection is made, above which the sender is held back.
_OUTBOX_HIGH = 256 * 1024


class Upstream(asyncio.Protocol):
    """A connection leased by one session; replies come back in the order commands were sent."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.generation = node.generation
        self._transport: asyncio.Transport | None = None
        self._outbox: list[bytes] = []  # sent before the connection is made
        self._outbox_size = 0
        self._outbox_full = False  # the owner was told to hold back until we are connected
        self._writing_paused = False  # the transport's own flow control said so
        self._buf = bytearray()
        self._pos = 0
        self._scanner = ReplyScanner()
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.closed = False
        self.connected = False  # ever: a command on a never-connected upstream did not run
        self.error = ""
        # Called on every event (connected, data, closed): the owning session's reply pump.
        self.listener: Callable[[], None] | None = None
        # Pass-through mode (pub/sub, MONITOR): raw bytes go here instead of the buffer.
        self.raw_sink: Callable[[bytes], None] | None = None
        # Told True/False when the node reads slower than we write (a large request).
        self.backpressure: Callable[[bool], None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        if self.closed:
            transport.close()
            return
        self._transport = transport
        self.connected = True
        if self._reading_paused:
            transport.pause_reading()
        if self._outbox:
            transport.write(b"".join(self._outbox))  # may call pause_writing
            self._outbox.clear()
            self._outbox_size = 0
        self._release_outbox()
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self.raw_sink is not None:
            self.raw_sink(data)
            return
        self._buf += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = str(exc) if exc else f"{self.node.address} closed the connection"
        self._writing_paused = False
        self._release_outbox()
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.backpressure is not None:
            self.backpressure(True)

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.backpressure is not None:
            self.backpressure(False)

    def _release_outbox(self) -> None:
        """The outbox has gone (written, or the connection failed): an owner held back by
        it may go on, unless the transport itself is full."""
        if self._outbox_full:
            self._outbox_full = False
            if self.backpressure is not None and not self._writing_paused:
                self.backpressure(False)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.listener is not None:
            self.listener()

    # -- connecting -----------------------------------------------------------------------

    async def connect(self, host: str, port: int, timeout: float) -> None:
        """Run as a task by ``Node.open``; failures close the upstream (the owner is told)."""
        error = await open_connection(self, host, port, timeout)
        if error is not None:
            self.closed = True
            self.error = error
            self._release_outbox()
            self._wake()

    async def ready(self) -> None:
        while self._transport is None:
            if self.closed:
                raise ConnectionError(self.error)
            await self.wait()

    async def wait(self) -> None:
        """Until the next event; ConnectionError once closed with nothing left to read."""
        if self.closed:
            raise ConnectionError(self.error)
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- I/O ------------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        """Closed, or opened to an address the node no longer has (e.g. after a failover)."""
        return self.closed or self.generation != self.node.generation

    def send(self, data: bytes, count: int = 1) -> None:
        """``count``: how many commands ``data`` holds (a shared connection needs it)."""
        if self.closed:
            raise ConnectionError(self.error or f"connection to {self.node.address} is closed")
        if self._transport is None:
            self._outbox.append(data)
            self._outbox_size += len(data)
            if self._outbox_size >= _OUTBOX_HIGH and not self._outbox_full:
                # A large request streamed while the connection is still being made: hold
                # the client back rather than take all of it in here.
                self._outbox_full = True
                if self.backpressure is not None:
                    self.backpressure(True)
        else:
            self._transport.write(data)

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

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out (part of the reply being waited for)."""
        return len(self._buf) - self._pos

    @property
    def head_kind(self) -> int:
        """The type byte of the reply being waited for (0 when nothing is buffered)."""
        return self._buf[self._pos] if self._pos < len(self._buf) else 0

    @property
    def streaming(self) -> bool:
        return self._scanner.streaming

    def stream_chunk(self) -> tuple[bytes, bool]:
        """The next part of a large reply, as far as it has arrived; True once it is complete.
        What is handed out is dropped, so a large value never sits here whole."""
        end, complete = self._scanner.advance(self._buf, self._pos)
        chunk = bytes(self._buf[self._pos : end])
        if end == len(self._buf):
            self._buf.clear()
            self._pos = 0
        else:
            del self._buf[:end]
            self._pos = 0
        return chunk, complete

    def take_buffered(self) -> bytes:
        """Everything received but not yet handed out (when switching to pass-through)."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    @property
    def idle_clean(self) -> bool:
        """Connected, nothing buffered: safe to hand to another session."""
        return not self.closed and self._transport is not None and self._pos == len(self._buf)

    def pause_reading(self) -> None:
        self._reading_paused = True  # applied on connecting, if that is still to come
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.error = self.error or "closed by the ambassador"
        if self._transport is not None:
            self._transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection now (a reply deadline passed): owed replies will not come."""
        self.error = reason
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        self._wake()
