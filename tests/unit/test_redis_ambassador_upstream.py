"""A connection of a session's own, before it is connected: what is sent waits in an outbox,
and a large request filling it holds its client back until the outbox is gone."""

from __future__ import annotations

from dataclasses import dataclass

from ambassadors.redis_split.upstream import Upstream

CHUNK = b"x" * (64 * 1024)


@dataclass
class FakeNode:
    generation: int = 0
    address: str = "127.0.0.1:6379"


class FakeTransport:
    """Takes writes; ``full`` makes it say its buffer is over the high-water mark."""

    def __init__(self, upstream: Upstream, full: bool = False) -> None:
        self.upstream = upstream
        self.full = full
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data
        if self.full:
            self.upstream.pause_writing()

    def pause_reading(self) -> None:
        pass


def connected_after(chunks: int, full: bool = False) -> tuple[list[bool], FakeTransport]:
    """Send ``chunks`` chunks before the connection is made, then make it; what the owner was
    told (True: hold the client back)."""
    upstream = Upstream(FakeNode())  # type: ignore[arg-type]
    told: list[bool] = []
    upstream.backpressure = told.append
    for _ in range(chunks):
        upstream.send(CHUNK)
    transport = FakeTransport(upstream, full)
    upstream.connection_made(transport)  # type: ignore[arg-type]
    return told, transport


def test_a_small_outbox_holds_nobody_back() -> None:
    told, transport = connected_after(3)  # 192 KiB
    assert told == []
    assert transport.written == CHUNK * 3


def test_a_full_outbox_holds_the_client_back_until_it_is_written() -> None:
    told, transport = connected_after(10)
    assert told == [True, False]  # once, at 256 KiB; released once connected
    assert transport.written == CHUNK * 10


def test_the_release_waits_for_the_transport_when_it_is_full_too() -> None:
    told, _ = connected_after(10, full=True)
    assert told == [True, True]  # the transport's own pause: resume_writing releases


def test_a_failed_connection_releases_the_client() -> None:
    upstream = Upstream(FakeNode())  # type: ignore[arg-type]
    told: list[bool] = []
    upstream.backpressure = told.append
    for _ in range(5):
        upstream.send(CHUNK)
    upstream.connection_lost(ConnectionRefusedError("refused"))
    assert told == [True, False]
    assert upstream.closed
