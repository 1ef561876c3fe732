"""Upstream connections shared by many clients (twemproxy-style multiplexing).

A client whose connection carries no state of its own (no SELECT, AUTH, HELLO, CLIENT ...,
MULTI/WATCH, subscriptions or blocking commands) needs no Redis connection of its own: its
commands can travel on a connection shared with other such clients. That saves, per command, a
write and a read system call on the Redis side and a callback in the ambassador: the commands
of every client that spoke in one event-loop turn go out in one write, and their replies come
back in one read and are split by client here.

Each session sees its share of a shared connection as a ``Lane``, which offers the session the
same surface as a connection of its own (``Upstream``). Replies are matched to lanes in the
order the lanes' commands were written, which Redis preserves on one connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .resp import ReplyScanner, UpstreamProtocolError
from .upstream import open_connection

if TYPE_CHECKING:
    from .backends import Node

# A reply still incomplete with this much buffered is streamed to its client as it arrives
# (the same threshold as on a session's own connection), so a large value never sits here whole.
STREAM_AT = 512 * 1024
_COMPACT_AT = 256 * 1024
# How long a shared connection may wait for one slow client (see _pause_if_slow).
SLOW_READER_HOLD = 0.2
_PLUS, _MINUS, _DOLLAR = b"+-$"
_SIMPLE = b"+:"  # simple strings and integers: one line
_INLINE = b"+:$"  # the kinds the splitter finds inline
_HELLO_3 = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
# Runs of "+OK\r\n" by length, for the usual pipeline sizes.
_OK_REPLIES = {count: b"+OK\r\n" * count for count in range(2, 257)}


class SharedConnection(asyncio.Protocol):
    """One connection to a node, written to by many lanes; replies handed back in order."""

    def __init__(self, node: Node, protocol: int) -> None:
        self.node = node
        self.protocol = protocol  # RESP2 and RESP3 clients cannot share a connection
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        # One entry per ``Lane.send``: the lane and how many replies its commands get (no lane:
        # the connection's own HELLO, whose reply nobody wants). ``_taken``: how many of the
        # first entry's replies have been handed over already.
        self._owed: deque[tuple[Lane | None, int]] = deque()
        self._taken = 0
        if protocol == 3:
            self._owed.append((None, 1))
            self._out.append(_HELLO_3)
        self._buf = bytearray()
        self._pos = 0
        self._scanner = ReplyScanner()
        self._streaming_to: Lane | None = None
        self._paused_for: Lane | None = None
        self._pause_spent = False  # the reply being streamed ran out its hold
        self._hold: asyncio.TimerHandle | None = None
        self._partial = False  # the resumable scanner holds a reply in progress
        self.retired = False
        self.closed = False
        # Closed or retired: no new lanes, no new commands. (A move of the node to another
        # address retires its shared connections; see ``Node.move_to``.)
        self.stale = False
        self.connected = False
        self.error = ""
        self._lanes: set[Lane] = set()
        self._woken: list[Lane] = []  # lanes given replies by the read being split

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        if self.closed:
            transport.close()
            return
        self._transport = transport
        # Looked up once: asyncio.get_running_loop() makes a getpid() system call each time.
        self._loop = asyncio.get_running_loop()
        self.connected = True
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(str(exc) if exc else f"{self.node.address} closed the connection")

    def data_received(self, data: bytes) -> None:
        buf: bytes | bytearray
        if self._buf:
            buf = self._buf
            buf += data
            pos = self._pos
        else:
            # Nothing left over from the last read (the usual case): the replies are cut
            # from the bytes as they came, one copy each; only an incomplete reply at the
            # end is kept, in the buffer.
            buf = data
            pos = 0
        owed = self._owed
        woken = self._woken
        try:
            pos = self._split(buf, pos, owed)
        except UpstreamProtocolError as exc:
            self.abort(str(exc))
            return
        finally:
            if buf is data:
                if pos < len(data):
                    self._buf += memoryview(data)[pos:]
                    self._scanner.rebase(pos)
                self._pos = 0
            else:
                if pos == len(buf) or pos >= _COMPACT_AT:
                    del self._buf[:pos]
                    self._scanner.rebase(pos)
                    pos = 0
                self._pos = pos
            if woken:
                self._woken = []
                for lane in woken:
                    lane.woken = False
                    listener = lane.listener
                    if listener is not None:
                        listener()
        if pos < len(buf) and not owed:
            # Nothing was asked on this connection: a RESP3 push cannot happen (lanes are
            # RESP2 only), so this is a protocol fault; every lane's commands are suspect.
            self.abort("unexpected data from Redis on a shared connection")

    def _split(self, buf: bytes | bytearray, pos: int, owed: deque[tuple[Lane | None, int]]) -> int:
        """Hand every complete reply in ``buf`` from ``pos`` to the lane that asked for it.

        Consecutive replies to one lane go to it as one piece with their count (a pipeline's
        replies are passed on as they came); an error reply goes alone, because the session
        looks at errors one by one (-READONLY, -NOSCRIPT)."""
        end_of_data = len(buf)
        find = buf.find
        scan = self._scanner.scan
        while owed and pos < end_of_data:
            lane, left = owed[0]
            if lane is None:
                found = scan(buf, pos)
                if found is None:
                    break
                pos = found[1]
                owed.popleft()
                continue
            left -= self._taken
            run_start = pos
            taken = 0
            if not self._partial:
                if (
                    left > 1
                    and buf[pos] == _PLUS
                    and buf[pos : pos + 5 * left] == _OK_REPLIES.get(left, b"")
                ):
                    # A pipeline of writes answered +OK each: all of them in one comparison.
                    taken = left
                    pos += 5 * left
                else:
                    # The replies that make up almost all traffic (bulk strings, simple
                    # strings, integers) are found inline, as long as they are complete.
                    try:
                        while True:
                            kind = buf[pos]
                            if kind == _DOLLAR:
                                eol = find(b"\r\n", pos)
                                if eol < 0:
                                    break
                                length = int(buf[pos + 1 : eol])
                                end = eol + 4 + length if length >= 0 else eol + 2
                            elif kind in _SIMPLE:
                                end = find(b"\r\n", pos) + 2
                                if end == 1:
                                    break
                            else:
                                break
                            if end > end_of_data:
                                break
                            pos = end
                            taken += 1
                            if taken == left or pos == end_of_data:
                                break
                    except ValueError as exc:
                        raise UpstreamProtocolError(f"bad length in reply: {exc}") from exc
                if taken == left:
                    # All the replies this client write gets: straight to the client when its
                    # session can take them now (nothing of this lane's waiting before them).
                    piece = bytes(buf[run_start:pos])
                    direct = lane.direct
                    if direct is None or lane.counts or not direct(lane, piece, taken):
                        lane.deliver(piece, taken)
                    owed.popleft()
                    self._taken = 0
                    continue
            elif self._streaming_to is not None:
                end, complete = self._scanner.advance(buf, pos)
                lane.stream_part(bytes(buf[pos:end]), complete)
                pos = end
                if not complete:
                    self._pause_if_slow(lane)
                    break
                self._streaming_to = None
                self._partial = False
                self._pause_spent = False
                self._resume_if_paused()
                self._taken += 1
                if left == 1:
                    owed.popleft()
                    self._taken = 0
                continue
            # Anything else (an error, an aggregate, a reply not all here yet): the resumable
            # scanner, one reply at a time, until short replies follow again.
            resume_inline = False
            while taken < left and pos < end_of_data:
                kind = buf[pos]
                found = scan(buf, pos)
                if found is None:
                    self._partial = True
                    break
                self._partial = False
                end = found[1]
                if kind == _MINUS:
                    if pos > run_start:
                        lane.deliver(bytes(buf[run_start:pos]), taken)
                    lane.deliver(bytes(buf[pos:end]), 1)
                    left -= taken + 1
                    self._taken += taken + 1
                    taken = 0
                    run_start = end
                else:
                    taken += 1
                pos = end
                if pos < end_of_data and buf[pos] in _INLINE and taken < left:
                    resume_inline = True
                    break
            if taken:
                lane.deliver(bytes(buf[run_start:pos]), taken)
                left -= taken
            if not left:
                owed.popleft()
                self._taken = 0
                continue
            self._taken += taken
            if resume_inline:
                continue  # the rest of this lane's replies, inline again
            if self._partial and end_of_data - pos >= STREAM_AT and buf[pos] != _MINUS:
                self._streaming_to = lane
                continue
            break
        return pos

    # -- lanes ----------------------------------------------------------------------------

    def attach(self) -> Lane:
        lane = Lane(self)
        self._lanes.add(lane)
        return lane

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    def detach(self, lane: Lane) -> None:
        """The session is gone: replies still owed to it are read and dropped."""
        if lane in self._lanes:
            self._lanes.discard(lane)
            lane.listener = lane.direct = None
            lane.detached = lane.stale = True
            if self._paused_for is lane:
                self._resume_if_paused()
            self._close_if_retired()

    def _schedule_flush(self) -> None:
        # Every client that speaks in this event-loop turn goes out in the same write.
        assert self._loop is not None
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and not self.closed:
            out = self._out
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])
            out.clear()

    # -- flow control for a large reply to a slow client ---------------------------------

    def _pause_if_slow(self, lane: Lane) -> None:
        """A large reply goes to a client that is not keeping up: hold the connection (and so
        the reply, in Redis) until the client catches up rather than buffer it here. At most
        SLOW_READER_HOLD at a time, though: a client that stopped reading must not hold up
        everyone sharing the connection. If it has not caught up by then, the rest of its
        reply waits here."""
        if (
            lane.paused
            and self._transport is not None
            and self._paused_for is None
            and not self._pause_spent
        ):
            self._paused_for = lane
            self._pause_spent = True
            self._transport.pause_reading()
            self._hold = asyncio.get_running_loop().call_later(
                SLOW_READER_HOLD, self._resume_if_paused
            )

    def _resume_if_paused(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if self._paused_for is not None:
            self._paused_for = None
            if self._transport is not None and not self.closed:
                self._transport.resume_reading()

    def lane_paused(self, lane: Lane) -> None:
        if self._streaming_to is lane:
            self._pause_if_slow(lane)

    def lane_resumed(self, lane: Lane) -> None:
        if self._streaming_to is lane:
            # It is reading again (in time or not): when it next falls behind, hold the
            # connection again rather than take the rest of its reply in here.
            self._pause_spent = False
        if self._paused_for is lane:
            self._resume_if_paused()

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self, host: str, port: int, timeout: float) -> None:
        error = await open_connection(self, host, port, timeout)
        if error is not None:
            self._close(error)

    @property
    def owed(self) -> int:
        return len(self._owed)

    def retire(self) -> None:
        """No new lanes; close once the lanes still attached have gone."""
        self.retired = True
        self._mark_stale()
        self._close_if_retired()

    def _mark_stale(self) -> None:
        self.stale = True
        for lane in self._lanes:
            lane.stale = True

    def _close_if_retired(self) -> None:
        if self.retired and not self._lanes and not self.closed:
            self._close("retired")
            if self._transport is not None:
                self._transport.close()

    def abort(self, reason: str) -> None:
        self._close(reason)
        if self._transport is not None:
            self._transport.abort()

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.error = reason
        self._mark_stale()
        self._owed.clear()
        self._taken = 0
        self._streaming_to = None
        self._partial = False
        for lane in list(self._lanes):
            if lane.listener is not None:
                lane.listener()


class _Stream:
    __slots__ = ("complete", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.complete = False


class Lane:
    """A session's share of a ``SharedConnection``: the surface of ``Upstream`` it uses."""

    __slots__ = (
        "_shared",
        "_streams",
        "backpressure",
        "counts",
        "detached",
        "direct",
        "listener",
        "node",
        "paused",
        "raw_sink",
        "replies",
        "stale",
        "woken",
    )

    def __init__(self, shared: SharedConnection) -> None:
        self._shared = shared
        self.node = shared.node
        # Replies arrived, in pieces of one or more (``counts``: how many in each piece). A
        # count of 0 marks the place of a large reply passed on in parts (``_streams``).
        self.replies: deque[bytes] = deque()
        self.counts: deque[int] = deque()
        self._streams: deque[_Stream] = deque()
        self.listener: Callable[[], None] | None = None
        # Unused on a lane (pass-through and large requests take a connection of their own);
        # present so the session can treat both kinds alike.
        self.raw_sink: Callable[[bytes], None] | None = None
        self.backpressure: Callable[[bool], None] | None = None
        self.detached = False
        self.paused = False
        # No new commands on it: its connection is closed or retired, or the lane detached.
        self.stale = shared.stale
        self.woken = False  # its listener is due once the current read has been split
        # The session's way to take replies straight from the splitter (see _split); None:
        # they wait in ``replies`` for the listener.
        self.direct: Callable[[Lane, bytes, int], bool] | None = None

    @property
    def closed(self) -> bool:
        return self._shared.closed

    @property
    def connected(self) -> bool:
        return self._shared.connected

    @property
    def error(self) -> str:
        return self._shared.error

    def send(self, data: bytes, count: int = 1) -> None:
        """``count`` commands in ``data``, to go out with this event-loop turn's others."""
        # Done here, not by a call to the shared connection: this runs for every client write.
        shared = self._shared
        if shared.closed:
            raise ConnectionError(shared.error or f"connection to {self.node.address} is closed")
        shared._owed.append((self, count))
        shared._out.append(data)
        if not shared._flush_scheduled and shared._loop is not None:
            shared._schedule_flush()

    def deliver(self, replies: bytes, count: int) -> None:
        self.replies.append(replies)
        self.counts.append(count)
        if not self.woken:
            self.woken = True
            self._shared._woken.append(self)

    @property
    def ready(self) -> int:
        """How many replies the next piece holds (0: none has arrived)."""
        counts = self.counts
        return counts[0] if counts else 0

    def take_piece(self) -> bytes:
        """The next piece whole (``ready`` replies, in order)."""
        self.counts.popleft()
        return self.replies.popleft()

    def try_reply(self) -> bytes | None:
        """The next single reply; a piece of several is cut here when the session needs them
        one at a time."""
        counts = self.counts
        if not counts or not counts[0]:
            return None  # nothing yet, or a streamed reply comes first
        if counts[0] == 1:
            counts.popleft()
            return self.replies.popleft()
        piece = self.replies[0]
        found = ReplyScanner().scan(piece, 0)
        assert found is not None  # a piece holds complete replies only
        end = found[1]
        self.replies[0] = piece[end:]
        counts[0] -= 1
        return piece[:end]

    # The session's own streaming trigger looks at these; on a lane the shared connection
    # decides when a reply is large, so they report nothing pending.
    buffered = 0
    head_kind = 0
    idle_clean = False

    @property
    def streaming(self) -> bool:
        """The next reply is one being passed on in parts."""
        counts = self.counts
        return bool(counts) and not counts[0]

    def stream_part(self, data: bytes, complete: bool) -> None:
        streams = self._streams
        if not streams or streams[-1].complete:
            streams.append(_Stream())
            self.counts.append(0)  # its place among the replies
            self.replies.append(b"")
        stream = streams[-1]
        if not self.woken:
            self.woken = True
            self._shared._woken.append(self)
        if data and not self.detached:
            stream.parts.append(data)
        stream.complete = complete

    def stream_chunk(self) -> tuple[bytes, bool]:
        """What has arrived of the streamed reply at the head; True once it is all there (it
        then leaves the head)."""
        stream = self._streams[0]
        chunk = b"".join(stream.parts)
        stream.parts.clear()
        if stream.complete:
            self._streams.popleft()
            self.counts.popleft()
            self.replies.popleft()
        return chunk, stream.complete

    def take_buffered(self) -> bytes:
        data = b"".join(self.replies)
        self.replies.clear()
        self.counts.clear()
        return data

    def pause_reading(self) -> None:
        self.paused = True
        self._shared.lane_paused(self)

    def resume_reading(self) -> None:
        self.paused = False
        self._shared.lane_resumed(self)

    def close(self) -> None:
        self._shared.detach(self)

    def abort(self, reason: str) -> None:
        """A reply deadline passed: the node is not answering anyone on this connection."""
        self._shared.abort(reason)
