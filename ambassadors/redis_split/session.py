"""One client connection: its commands routed to nodes, its replies returned in request order,
and all of its connection state (database, auth, protocol, name, MULTI/WATCH, subscriptions,
read-your-writes) in one place.

A session that keeps no connection state of its own sends its commands on connections shared
with other such sessions (``shared.Lane``); the first command that would give the connection
state (SELECT, AUTH, HELLO, CLIENT ..., MULTI, WATCH, subscriptions, blocking commands, WAIT)
moves it, for good, to connections of its own: one per node it touches, so per-connection state
on the Redis side is simply this client's state, replayed when a new node is touched. The move
waits until the shared connections have answered everything sent on them, so the client's
commands still run in the order it sent them.

The hot path is synchronous and callback-driven: client bytes are scanned and written to
upstreams in ``feed``; replies are matched to the oldest outstanding command and written back in
the upstream's data callback (``_drain``). Only the rare cases that must wait (re-sending a read
after a node was lost, NOSCRIPT/READONLY recovery, a script broadcast, a failover hold) leave the
fast path, one at a time, through ``_slow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import cast

import hiredis

from . import metrics
from .backends import Backends, Node, Role
from .commands import CommandTable
from .config import Config, ReadPolicy
from .resp import (
    Command,
    ProtocolError,
    RequestScanner,
    UpstreamProtocolError,
    encode_command,
    error_reply,
    lower_name,
)
from .router import NAME_ONLY, Action, classify, classify_by_name
from .shared import Lane
from .upstream import Upstream

# A connection a session sends on: its own, or its share of a shared one.
Link = Upstream | Lane

log = logging.getLogger("redis_ambassador.session")

_MAX_IN_FLIGHT = 4096  # commands awaiting replies before we stop reading from the client
# The same for the pipeline fast path, whose queue entries are groups of up to 64 KiB of
# commands: at most this many client writes in flight.
_MAX_GROUPS_IN_FLIGHT = 64
# On shared connections a client's replies cannot be left in Redis while it is slow to read
# them (see shared.py): fewer of its commands may be in flight.
_MAX_IN_FLIGHT_SHARED = 256
_OUT_FLUSH = 256 * 1024
# A reply with this much already buffered and still incomplete is streamed to the client.
_STREAM_AT = 512 * 1024
_RETRIES = 2
# The order connection state is replayed in on a new node: credentials first.
_PRELUDE_ORDER = ("auth", "hello", "setname", "setinfo-lib-name", "setinfo-lib-ver", "select")
_OK = b"+OK\r\n"
_PUSH = ord(">")
_ASTERISK = ord("*")
_MINUS = ord("-")
_LOST = (ConnectionError, OSError, TimeoutError, UpstreamProtocolError)
# Actions that count as writes when sent to the master (read-your-writes bookkeeping).
_WRITE_ACTIONS = frozenset(a for a in Action if a not in (Action.READ, Action.SCAN, Action.MASTER))
# What may travel on a shared connection: everything that neither changes the connection's
# state nor holds the connection while it waits. The rest needs a connection of the client's own.
_SHAREABLE = frozenset(
    {
        Action.READ,
        Action.SCAN,
        Action.WRITE,
        Action.MASTER,
        Action.BROADCAST,
        Action.EXEC,
        Action.UNWATCH,
        Action.QUIT,
    }
)
# Names that concern the connection whatever the command table says about them.
_OWN_CONNECTION = frozenset(
    {b"client", b"wait", b"waitaof", b"sync", b"psync", b"replconf", b"readonly",
     b"readwrite", b"asking", b"monitor", b"hello", b"auth", b"select", b"reset"}
)  # fmt: skip
# WAIT and WAITAOF wait for the writes made on the connection they are sent on. For a client
# that wrote on a shared connection and then moved to its own, one write that changes no data
# gives its own connection a replication offset past those writes: WAIT then waits for them.
_WAIT_MARKER = encode_command("PUBLISH", "__redis_ambassador__:wait-mark", "")
_perf_counter = time.perf_counter
# Larger client writes take the general path, which can stream a large request onwards.
_FAST_PATH_MAX = 64 * 1024
_join = b"".join
_FOLD_AT = metrics.FOLD_AT
_LOCAL_STATS = metrics.COMMAND_STATS.route("local")  # replies the ambassador gives itself


@dataclass(slots=True)
class Pending:
    """A command sent (or answered locally) whose reply the client has not received yet."""

    upstream: Link | None  # None: ``literal`` is the reply (or ``frame`` must be re-sent)
    literal: bytes
    frame: bytes | None  # reads (re-sendable elsewhere) and plain writes (READONLY recovery)
    action: Action
    forward: bool  # False: a mirrored state command on a secondary connection; reply dropped
    started: float
    before: asyncio.Task[None] | None = None
    write: bool = False
    # A plain write outside MULTI/WATCH: on -READONLY it did not run, so after a failover it
    # can be re-sent to the new master.
    retry_write: bool = False
    deferred: bool = False  # a write held while a failover completes
    # A command forwarded by the pipeline fast path: its parsed arguments, from which ``frame``
    # is built only if it has to be re-sent.
    args: list[bytes] | None = None
    # A group: ``count`` commands forwarded together with the same action, whose replies are
    # passed on together (``batch[batch_index:]`` are their arguments).
    count: int = 1
    batch: list[list[bytes]] | None = None
    batch_index: int = 0
    # EXEC of a transaction that changed connection state: applied if EXEC ran it.
    applies: list[tuple[str, bytes]] | None = None

    def resend_frame(self) -> bytes | None:
        """The command as bytes, to send again (a group's first command: the only one left
        once the others have been peeled off or answered)."""
        if self.frame is None:
            args = self.args
            if args is None and self.batch is not None:
                args = self.batch[self.batch_index]
            if args is not None:
                self.frame = encode_command(*args)
        return self.frame


# The fast path's classification by raw command name (as the client spells it), for the names
# it may forward: READ, WRITE or MASTER by name alone, and not about the connection. Cleared
# when the command table changes, as the router's own memo is; bounded like resp's name cache.
_fast_names: dict[bytes, Action] = {}
_fast_names_table: list[CommandTable | None] = [None]
# Enum members looked up once: reading one through its class is a slow attribute lookup.
_READ, _WRITE, _MASTER = Action.READ, Action.WRITE, Action.MASTER
_MASTER_ROLE = Role.MASTER
_first = itemgetter(0)
_INCOMPLETE = object()  # what the fast path's hiredis reader says when no command is complete


def _new_reader() -> hiredis.Reader:
    return hiredis.Reader(notEnoughData=_INCOMPLETE)


def _fast_actions(commands: list[list[bytes]], table: CommandTable) -> list[Action] | None:
    """Each command's action, or None when one of them needs the general path."""
    if _fast_names_table[0] is not table:
        _fast_names.clear()
        _fast_names_table[0] = table
    actions = list(map(_fast_names.get, map(_first, commands)))
    if None in actions:
        for index, command in enumerate(commands):
            if actions[index] is not None:
                continue
            name = lower_name(command[0])
            action = classify_by_name(name, table)
            if action is None or name in _OWN_CONNECTION:
                return None
            if action is not _READ and action is not _WRITE and action is not _MASTER:
                return None
            if len(_fast_names) < 4096:
                _fast_names[command[0]] = action
            actions[index] = action
    return actions  # type: ignore[return-value]  # no None left


def _state_key(command: Command) -> str:
    """Where a connection-state command is remembered (one entry per kind of state)."""
    key = command.name.decode()
    if command.name == b"client":
        key = command.args[0].lower().decode() if command.args else "client"
        if key == "setinfo" and len(command.args) > 1:
            key = f"setinfo-{command.args[1].lower().decode(errors='replace')}"
    return key


def _plain_hello(command: Command) -> int | None:
    """The protocol asked for by a ``HELLO 2`` or ``HELLO 3`` without AUTH or SETNAME."""
    if command.name == b"hello" and command.argc == 2 and command.args[:1] in ((b"2",), (b"3",)):
        return int(command.args[0])
    return None


class Session(asyncio.Protocol):
    """A client connection's protocol. (Being the protocol itself, rather than called by one,
    saves a call per client read on the hot path.)"""

    _transport: asyncio.Transport

    def __init__(
        self,
        backends: Backends,
        config: Config,
        on_finished: Callable[[Session], None],
    ) -> None:
        self._backends = backends
        self._config = config
        self._on_finished = on_finished
        self._buf = bytearray()
        self._scanner = RequestScanner(NAME_ONLY)
        self._reader = _new_reader()  # the pipeline fast path's parser
        self._conns: dict[Node, Link] = {}
        self._retired: list[Link] = []
        self._shared_ok = config.shared_connections > 0
        # Every read goes to the master (while it is up): the fast path need not ask the
        # read policy.
        self._reads_on_master = config.read_policy is ReadPolicy.MASTER
        self._protocol = 2  # RESP version of the shared connections this client uses
        self._wrote_shared = False  # a write went out on a shared connection
        self._prelude: dict[str, bytes] = {}
        self._in_multi = False
        self._watching = False
        self._dirty = False  # upstream connections carry state another client must not inherit
        self._scan_node: Node | None = None
        # read-your-writes
        self._pending_writes = 0
        self._last_write_ack = 0.0  # perf_counter() when the last write's reply came
        self._wrote = False
        self._need_offset: int | None = None
        # reply pipeline
        self._queue: deque[Pending] = deque()
        self._spare: Pending | None = None  # see _direct_reply
        self._out: list[bytes] = []
        self._out_size = 0
        self._slow_task: asyncio.Task[None] | None = None
        self._answered_by: Node | None = None  # the node whose reply the slow path got
        self._blocked = False  # dispatch nothing more until every reply is delivered
        self._closing = False  # no more commands: deliver what is owed, then close
        self._client_gone = True  # until connection_made: nothing to write to
        self._reading_paused = False
        self._write_blocked = False  # the client's socket is full: it is not reading replies
        self._held_back = False  # complete commands left in _buf by the in-flight limit
        self._queued_state: list[tuple[str, bytes]] = []  # SELECT ... queued inside MULTI
        self._pipe_pending: Link | None = None
        self._pipe: Link | None = None
        self._request_stream: Link | None = None  # a large request being forwarded
        self._finished = False
        self.last_active = time.monotonic()  # brought up to date by each deadline sweep
        self._heard = False  # the client sent something since the last sweep
        self.closing_since: float | None = None

    # -- client side (asyncio.Protocol) ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._client_gone = False

    def data_received(self, data: bytes) -> None:
        self._heard = True  # (cheaper than reading the clock on every read)
        if self._pipe is not None:
            with contextlib.suppress(ConnectionError):
                self._pipe.send(data)
            return
        if self._closing:
            return
        if self._buf:
            self._buf += data
            self._process()
            return
        # Nothing buffered (the usual case): the fast path takes the client's bytes as they
        # came, and only what it declines is copied into the buffer.
        if data[0] == _ASTERISK and self._forward_pipeline(data):
            return
        self._buf += data
        self._process_scanned()

    def eof_received(self) -> bool:
        """The client half-closed: answer what it sent, then close."""
        self._begin_closing()
        self._drain()
        return True  # keep the transport: replies owed are still written, then we close

    def connection_lost(self, exc: Exception | None) -> None:
        self._client_gone = True
        self._begin_closing()
        if self._pipe is not None:
            self._finish()
        else:
            self._drain()

    def stop(self) -> None:
        """Graceful shutdown: read no more commands; replies in flight are still delivered."""
        self._begin_closing()
        self._pause_client()
        if self._pipe is not None:
            self._finish()
        else:
            self._drain()

    def pause_writing(self) -> None:
        """The client reads slower than nodes answer: stop reading from the nodes, and take no
        more commands from it (on a shared connection its replies cannot be left in Redis:
        they would hold up everyone's)."""
        self._write_blocked = True
        if not self._client_gone:
            self._transport.pause_reading()
        if self._shared_ok and self._pipe is None:
            # A reader this slow gets connections of its own, where its replies can wait in
            # Redis (paused as they are opened) rather than here.
            self._leave_shared()
        # Retired ones too: a shared connection still owing this client a large reply holds it.
        for upstream in (*self._conns.values(), *self._retired):
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self._write_blocked = False
        if not self._client_gone and not self._reading_paused:
            self._transport.resume_reading()
        for upstream in (*self._conns.values(), *self._retired):
            upstream.resume_reading()
        if self._held_back and not self._blocked and not self._closing:
            self._held_back = False
            self._process()

    def _upstream_backpressure(self, full: bool) -> None:
        """A node's socket buffer is full (we forward a large request faster than it reads):
        stop reading from the client until it drains."""
        if self._client_gone:
            return
        if full:
            self._transport.pause_reading()
        elif not self._reading_paused and not self._write_blocked:
            self._transport.resume_reading()

    def check_deadlines(self, now: float) -> None:
        """Called periodically by the server: reply deadlines, idle clients, stuck closes."""
        if self._finished:
            return
        if self._queue and self._slow_task is None:
            head = self._queue[0]
            upstream = head.upstream
            timeout = self._config.upstream_timeout
            no_deadline = head.action is Action.BLOCKING or head.action is Action.EXEC
            if (
                upstream is not None
                and not no_deadline
                and not upstream.streaming  # a large reply in progress is not a hung node
                and timeout > 0
                and time.perf_counter() - head.started > timeout
            ):
                upstream.abort(f"no reply from {upstream.node.address} within {timeout}s")
        if self._heard:
            self._heard = False
            self.last_active = now
        idle = self._config.client_idle_timeout
        if idle > 0 and not self._queue and self._pipe is None and now - self.last_active > idle:
            self._begin_closing()
            self._drain()
        if self.closing_since is not None and now - self.closing_since > max(
            self._config.shutdown_grace, 1.0
        ):
            self._finish()  # e.g. a client that left during BLPOP 0

    # -- routing --------------------------------------------------------------------------

    def _process(self) -> None:
        buf = self._buf
        if buf[:1] == b"*" and self._scanner.frame_start < 0 and self._forward_pipeline(bytes(buf)):
            buf.clear()
            return
        self._process_scanned()

    def _process_scanned(self) -> None:
        """The general path: commands scanned one by one and dispatched by their kind."""
        touched: dict[Link, list[bytes]] = {}
        buf = self._buf
        scanner = self._scanner
        pos = 0
        # Commands in flight, for the shared connections' limit (groups count their commands).
        in_flight = self._commands_in_flight() if self._shared_ok else 0
        try:
            while not self._closing and not self._blocked:
                if self._write_blocked:
                    # The client is not reading its replies: take no more of its commands.
                    self._held_back = True
                    break
                if self._shared_ok:
                    if in_flight >= _MAX_IN_FLIGHT_SHARED:
                        self._held_back = True
                        break  # the rest once replies have gone out (see _drain)
                    in_flight += 1
                if self._request_stream is not None:
                    pos = self._continue_request_stream(buf, pos)
                    if self._request_stream is not None:
                        break
                    continue
                command = scanner.scan(buf, pos)
                if command is None:
                    start = scanner.frame_start
                    if start >= 0 and len(buf) - start >= _STREAM_AT:
                        if self._shared_ok and self._leave_shared():
                            break  # streamed on a connection of its own once the lanes drain
                        partial = scanner.partial()
                        if partial is not None and self._start_request_stream(partial, touched):
                            continue
                    break
                action = classify(command, self._backends.table)
                if self._shared_ok and (
                    command.name in _OWN_CONNECTION or action not in _SHAREABLE
                ):
                    if self._library_info(command, buf):
                        pos = command.end
                        continue
                    if self._unknown_client_command(command):
                        pass  # Redis answers with an error and nothing changes: shareable
                    elif (protocol := _plain_hello(command)) is not None:
                        if self._switch_protocol(protocol):
                            break  # dispatched once the shared connections have answered
                    elif self._leave_shared():
                        break  # dispatched once the shared connections have answered
                pos = command.end
                frame = command.encoded
                if frame is None:
                    frame = bytes(buf[command.start : pos])
                self._dispatch(command, action, frame, touched)
        except ProtocolError as exc:
            metrics.REJECTED_CLIENTS.labels("protocol").inc()
            log.info("protocol error, closing client", extra={"reason": str(exc)})
            if self._request_stream is not None:
                self._request_stream.abort("client sent a malformed request mid-frame")
                self._request_stream = None
            self._answer(error_reply(str(exc)))
            self._begin_closing()
        finally:
            self._send_touched(touched)
        if pos:
            del buf[:pos]
            scanner.rebase(pos)
        queue = self._queue
        if len(queue) > _MAX_IN_FLIGHT or self._blocked or self._held_back:
            self._pause_client()
        # Replies are delivered from the upstream data callback; here only what needs no
        # node (local answers, closing, a drained queue) can be ready.
        if not queue or queue[0].upstream is None or self._closing or self._blocked:
            self._drain()

    def _forward_pipeline(self, data: bytes) -> bool:
        """The common case at full speed: ``data`` (everything the client has sent) is complete
        commands that read (or that write), routed by name alone. hiredis parses them in C, the
        bytes go to one node as they came, and only the replies are matched. False: nothing
        was done, and the general path (which also produces Redis's own protocol errors) takes
        over."""
        if (
            self._write_blocked
            or self._in_multi
            or self._watching
            or self._blocked
            or self._closing
            or self._request_stream is not None
            or self._backends.promotion_seen
            or len(data) > _FAST_PATH_MAX
        ):
            return False
        queue = self._queue
        shared = self._shared_ok
        if shared and queue and self._commands_in_flight() >= _MAX_IN_FLIGHT_SHARED:
            return False  # the general path holds the rest back
        reader = self._reader
        try:
            reader.feed(data)
            # Until gets() says no complete command is left, looping in C. (Its own default
            # for that is False, which an integer 0 would also equal.)
            commands: list[list[bytes]] = list(iter(reader.gets, _INCOMPLETE))
        except hiredis.ProtocolError:
            self._reader = _new_reader()
            return False
        if reader.has_data():  # ends inside a command
            self._reader = _new_reader()
            return False
        # hiredis also accepts what Redis refuses in a request (integers, nils, nested arrays,
        # empty arrays): joining fails, or gives b"", on anything but a list of bulk strings.
        try:
            if not all(map(_join, commands)):
                return False
        except TypeError:
            return False
        count = len(commands)
        table = self._backends.table
        if count == 1 and _fast_names_table[0] is table:
            # One command per client write (no pipelining): its action from the cache.
            action = _fast_names.get(commands[0][0])
            if action is None:
                return False if (found := _fast_actions(commands, table)) is None else (
                    self._forward_batch(data, commands, found))  # fmt: skip
            if action is _READ and not self._reads_on_master:
                upstream = self._send_fast(True, data, 1)
                if upstream is None:
                    return False
                node = upstream.node
            else:
                # _send_fast for the master, written out for its usual case: a connection
                # there is open and the master is up (anything else: _send_fast itself).
                node = self._backends.master
                upstream = self._conns.get(node)
                if upstream is None or upstream.stale or not node.up:
                    upstream = self._send_fast(action is _READ, data, 1)
                    if upstream is None:
                        return False
                else:
                    try:  # noqa: SIM105 - cheaper than contextlib.suppress
                        upstream.send(data, 1)
                    except ConnectionError:
                        pass  # the replies' wait ends with the connection: _drain handles it
            write = action is _WRITE  # (and so sent to the master)
            pending = self._spare
            if pending is not None:
                # The last one answered, its other fields still as a new one's.
                self._spare = None
                pending.upstream = upstream
                pending.action = action
                pending.started = _perf_counter()
                pending.write = pending.retry_write = write
                pending.args = commands[0]
                queue.append(pending)
            else:
                # (upstream, literal, frame, action, forward, started, before, write,
                # retry_write, deferred, args)
                queue.append(Pending(upstream, b"", None, action, True, _perf_counter(), None,
                                     write, write, False, commands[0]))  # fmt: skip
            node.outstanding += 1
            if write:
                # _note_writes(1), written out: this runs for every -P 1 write.
                self._pending_writes += 1
                self._wrote = True
                self._need_offset = None
                if shared:
                    self._wrote_shared = True
            if len(queue) > _MAX_GROUPS_IN_FLIGHT:
                self._pause_client()  # resumed once everything owed is delivered
            return True
        if shared and count > _MAX_IN_FLIGHT_SHARED:
            return False  # the general path forwards them in instalments
        actions = _fast_actions(commands, table)
        if actions is None:
            return False
        return self._forward_batch(data, commands, actions)

    def _forward_batch(
        self, data: bytes, commands: list[list[bytes]], actions: list[Action]
    ) -> bool:
        """The fast path for a pipeline: all of it to one node, or False (nothing done)."""
        count = len(commands)
        reads = actions.count(_READ)
        if reads and reads != count:
            return False  # reads and writes for different nodes: one by one
        upstream = self._send_fast(reads == count, data, count)
        if upstream is None:
            return False
        self._queue_forwarded(upstream, commands, actions)
        queue = self._queue
        if len(queue) > 1 and (
            len(queue) > _MAX_GROUPS_IN_FLIGHT or self._commands_in_flight() > _MAX_IN_FLIGHT
        ):
            self._pause_client()
        return True

    def _send_fast(self, reads: bool, data: bytes, count: int) -> Link | None:
        """The fast path's send: ``count`` commands, all reads or all for the master, to the
        node they go to, on this session's connection there (opened if need be). None: no
        node can take them now (nothing was sent; the general path answers with the error)."""
        if reads:
            node = self._pick_reader()
            if node is None:
                return None
        else:
            node = self._backends.master
            if not node.up and node not in self._conns:
                return None
        upstream = self._conns.get(node)
        if upstream is None or upstream.stale:
            touched: dict[Link, list[bytes]] = {}
            upstream = self._connection(node, touched)
            self._send_touched(touched)  # a new connection's replayed state goes first
        try:  # noqa: SIM105 - a try costs less than contextlib.suppress, once per client write
            upstream.send(data, count)
        except ConnectionError:
            pass  # the replies' wait ends with the connection: _drain handles it
        return upstream

    def _queue_forwarded(
        self, upstream: Link, commands: list[list[bytes]], actions: list[Action]
    ) -> None:
        """The bookkeeping ``_send`` does per command, for a batch on one connection: each run
        of commands with the same action waits in the queue as one group (see ``Pending``)."""
        now = _perf_counter()
        to_master = upstream.node.role is _MASTER_ROLE
        append = self._queue.append
        count = len(commands)
        writes = 0
        first = 0
        while first < count:
            action = actions[first]
            if first == 0 and actions.count(action) == count:
                last = count  # the usual pipeline: one kind of command
            else:
                last = first + 1
                while last < count and actions[last] is action:
                    last += 1
            size = last - first
            retry = action is _WRITE  # -READONLY: it did not run; re-sent after failover
            write = to_master and retry
            if write:
                writes += size
            # (upstream, literal, frame, action, forward, started, before, write, retry_write,
            # deferred, args, count, batch)
            if size == 1:
                append(Pending(upstream, b"", None, action, True, now, None, write, retry, False,
                               commands[first]))  # fmt: skip
            else:
                append(Pending(upstream, b"", None, action, True, now, None, write, retry, False,
                               None, size, commands[first:last]))  # fmt: skip
            first = last
        if writes:
            self._note_writes(writes)
        upstream.node.outstanding += count

    def _peel(self, group: Pending) -> Pending:
        """The first command of a group (the queue's head) as a pending of its own, for the
        paths that handle replies one by one."""
        assert group.batch is not None
        single = Pending(
            group.upstream,
            b"",
            None,
            group.action,
            True,
            group.started,
            None,
            group.write,
            group.retry_write,
            False,
            group.batch[group.batch_index],
        )
        group.batch_index += 1
        group.count -= 1
        self._queue.appendleft(single)
        return single

    def _send_touched(self, touched: dict[Link, list[bytes]]) -> None:
        for upstream, parts in touched.items():
            with contextlib.suppress(ConnectionError):
                if len(parts) > 1:
                    upstream.send(b"".join(parts), len(parts))
                else:
                    upstream.send(parts[0])
        touched.clear()

    def _library_info(self, command: Command, buf: bytearray) -> bool:
        """``CLIENT SETINFO LIB-NAME|LIB-VER value``, which client libraries send on every new
        connection, only labels the connection in CLIENT LIST. Answered here, and remembered for
        a connection of the client's own should it need one, it keeps the client on the shared
        connections. Anything Redis might refuse goes to Redis."""
        args = command.args
        if command.argc != 4 or len(args) != 3 or args[0].lower() != b"setinfo":
            return False
        attribute, value = args[1].lower(), args[2]
        if attribute not in (b"lib-name", b"lib-ver") or not value:
            return False
        if any(byte < 33 or byte > 126 for byte in value):
            return False
        self._prelude[f"setinfo-{attribute.decode()}"] = bytes(buf[command.start : command.end])
        self._answer(_OK)
        return True

    def _unknown_client_command(self, command: Command) -> bool:
        """A CLIENT subcommand the master does not have (say ``CLIENT MAINT_NOTIFICATIONS``,
        which redis-py 8 sends to every server) fails there and changes nothing."""
        table = self._backends.table
        if command.name != b"client" or not command.args or not len(table):
            return False
        return b"client|" + command.args[0].lower() not in table.commands

    def _switch_protocol(self, protocol: int) -> bool:
        """``HELLO 2|3`` with no other option: the client stays on shared connections, those
        of its protocol (the HELLO itself is sent there, for its reply). Like a move to own
        connections, it waits until what was sent on the old ones is answered."""
        if self._queue:
            self._blocked = True
            return True
        if protocol != self._protocol:
            self._protocol = protocol
            for node, upstream in list(self._conns.items()):
                del self._conns[node]
                node.release(upstream, reusable=False)
        return False

    def _leave_shared(self) -> bool:
        """Move to connections of this client's own for good. True when commands are still
        owed replies: the caller then stops dispatching until they are delivered, so that what
        the client sends next cannot overtake them on another connection."""
        self._shared_ok = False
        if self._prelude:
            self._dirty = True  # the library labels will be replayed on the new connections
        for node, upstream in list(self._conns.items()):
            if isinstance(upstream, Lane):
                del self._conns[node]
                self._retired.append(upstream)
        if self._queue:
            self._blocked = True
            return True
        return False

    def _start_request_stream(self, partial: Command, touched: dict[Link, list[bytes]]) -> bool:
        """A large request (say a SET of a big value) is routed as soon as its name is known
        and forwarded as it arrives, instead of being held whole. Only plain commands qualify:
        connection-state and transaction commands are never large."""
        action = classify(partial, self._backends.table)
        if (
            action not in (Action.READ, Action.WRITE, Action.MASTER)
            or self._backends.promotion_seen
        ):
            return False
        node: Node | None
        if action is Action.READ and not (self._in_multi or self._watching):
            node = self._pick_reader()
        else:
            master = self._backends.master
            node = master if master.up or master in self._conns else None
        if node is None:
            return False  # answered with an error once it is complete, the ordinary way
        upstream = self._connection(node, touched)
        self._send(node, b"", action, touched, retryable=False)
        self._send_touched(touched)  # everything before it on that connection goes first
        self._request_stream = upstream
        return True

    def _continue_request_stream(self, buf: bytearray, pos: int) -> int:
        upstream = self._request_stream
        assert upstream is not None
        end, complete = self._scanner.advance(buf)
        if end > pos:
            with contextlib.suppress(ConnectionError):
                upstream.send(bytes(buf[pos:end]))
        if complete:
            self._request_stream = None
        return end

    def _dispatch(
        self, command: Command, action: Action, frame: bytes, touched: dict[Link, list[bytes]]
    ) -> None:
        if self._in_multi or self._watching:
            self._dispatch_transaction(command, action, frame, touched)
            return
        if action is Action.WRITE or action is Action.MASTER:
            # The common case first, without walking the rarer actions below.
            if command.name == b"client":
                self._dirty = True  # CLIENT TRACKING/REPLY/... change the connection
            self._send_master(frame, action, touched)
            return
        if action is Action.READ or action is Action.SCAN:
            node = self._pick_scan_node() if action is Action.SCAN else self._pick_reader()
            if node is None:
                self._answer(error_reply(self._no_reader_message()), route="error")
                return
            self._send(node, frame, action, touched, keep_frame=True)
        elif action is Action.QUIT:
            self._answer(_OK)
            self._begin_closing()
        elif action is Action.SUBSCRIBE:
            self._enter_pipe(frame, touched)
        elif action is Action.STATE or action is Action.RESET:
            self._dispatch_state(command, action, frame, touched)
        elif action is Action.BROADCAST:
            flush = command.args[:1] != () and command.args[0].lower() == b"flush"
            task = asyncio.get_running_loop().create_task(self._backends.broadcast(frame, flush))
            self._send_master(frame, action, touched, before=task)
        else:
            if action is Action.MULTI:
                self._in_multi = True
            elif action is Action.WATCH:
                self._watching = True
            elif self._wrote_shared and command.name in (b"wait", b"waitaof"):
                self._mark_writes(touched)
            if command.name == b"client":
                self._dirty = True  # CLIENT TRACKING/REPLY/... change the connection
            self._send_master(frame, action, touched)

    def _mark_writes(self, touched: dict[Link, list[bytes]]) -> None:
        """Before the first WAIT on this client's own master connection (see _WAIT_MARKER)."""
        master = self._backends.master
        if not master.up and master not in self._conns:
            return  # the WAIT gets the MASTERDOWN error
        self._wrote_shared = False
        self._send_unanswered(self._connection(master, touched), _WAIT_MARKER, touched)

    def _dispatch_transaction(
        self, command: Command, action: Action, frame: bytes, touched: dict[Link, list[bytes]]
    ) -> None:
        """Inside MULTI or after WATCH everything goes to the master connection, in order.

        Connection state changed inside a transaction (SELECT in MULTI) takes effect when EXEC
        runs it: it is remembered for the other nodes then. After WATCH alone it runs at once."""
        applies: list[tuple[str, bytes]] | None = None
        runs_now: tuple[str, bytes] | None = None
        if action is Action.EXEC:
            if command.name == b"exec" and self._queued_state:
                applies = self._queued_state
            self._queued_state = []
            self._in_multi = self._watching = False
        elif action is Action.UNWATCH and not self._in_multi:
            self._watching = False
        elif action is Action.MULTI:
            self._in_multi = True
            self._queued_state = []
        elif action is Action.STATE:
            self._dirty = True
            if self._in_multi:
                self._queued_state.append((_state_key(command), frame))
            else:
                runs_now = (_state_key(command), frame)
        elif action is Action.RESET:
            self._in_multi = self._watching = False
            self._prelude.clear()
        elif action is Action.QUIT:
            self._answer(_OK)
            self._begin_closing()
            return
        send_as: Action
        if action is Action.EXEC or action is Action.BLOCKING:
            send_as = action
        else:
            send_as = Action.MASTER if action is Action.READ else Action.WRITE
        self._send_master(frame, send_as, touched, in_transaction=True)
        if applies is not None and self._queue:
            self._queue[-1].applies = applies  # the EXEC (or a local error, never applied)
        if runs_now is not None:
            self._remember_state([runs_now], self._backends.master, touched)

    def _remember_state(
        self, states: list[tuple[str, bytes]], ran_on: Node, touched: dict[Link, list[bytes]]
    ) -> None:
        """State that took effect on ``ran_on``: replayed on nodes touched later, and applied
        now on this session's other connections (their replies are dropped)."""
        for key, frame in states:
            self._prelude[key] = frame
        self._mirror([frame for _, frame in states], ran_on, touched)

    def _mirror(self, frames: list[bytes], ran_on: Node, touched: dict[Link, list[bytes]]) -> None:
        """State commands that ran on ``ran_on``, applied on this session's other connections
        too."""
        for node, upstream in list(self._conns.items()):
            if node is ran_on or upstream.stale:
                continue
            for frame in frames:
                self._send_unanswered(upstream, frame, touched)

    def _send_unanswered(
        self, upstream: Link, frame: bytes, touched: dict[Link, list[bytes]]
    ) -> None:
        """A command of the ambassador's own on this session's connection: its reply is read
        in order and dropped."""
        touched.setdefault(upstream, []).append(frame)
        self._enqueue(Pending(upstream, b"", None, Action.STATE, False, time.perf_counter()))

    def _dispatch_state(
        self, command: Command, action: Action, frame: bytes, touched: dict[Link, list[bytes]]
    ) -> None:
        """SELECT/AUTH/HELLO/CLIENT SETNAME/RESET: the master's reply goes to the client, the
        same command is applied to this session's other connections and remembered for the
        nodes it touches later."""
        self._dirty = True
        key = ""
        if action is Action.RESET:
            self._prelude.clear()
            self._in_multi = self._watching = False
        else:
            key = _state_key(command)
        master = self._backends.master
        replier = master
        if not master.up and master not in self._conns:
            # Master down: the state still matters for reads on replicas; one of them answers.
            replier = self._backends.pick_reader(self._config.read_policy) or master
        if replier is master:
            self._send_master(frame, Action.MASTER, touched)
        else:
            self._send(replier, frame, Action.MASTER, touched)
        if key:
            # Remembered only now: a connection opened by the send above must not get the
            # command twice (once replayed, once sent).
            self._prelude[key] = frame
        self._mirror([frame], replier, touched)

    def _pick_reader(self) -> Node | None:
        backends = self._backends
        policy = self._config.read_policy
        if self._config.read_your_writes and self._wrote:
            master_up = backends.master.up
            if self._pending_writes:
                if master_up:
                    return backends.master
            elif self._config.read_your_writes_window > 0:
                since = _perf_counter() - self._last_write_ack
                if since < self._config.read_your_writes_window and master_up:
                    return backends.master
                if since >= self._config.read_your_writes_window:
                    self._wrote = False
            else:
                if self._need_offset is None:
                    self._need_offset = backends.master_offset_after(self._last_write_ack)
                if self._need_offset is None:
                    if master_up:
                        return backends.master
                else:
                    node = backends.pick_reader(policy, min_offset=self._need_offset)
                    if node is not None or not master_up:
                        return node
                    return backends.master
            # Master down: read-your-writes degrades to the read policy (documented).
        return backends.pick_reader(policy)

    def _pick_scan_node(self) -> Node | None:
        node = self._scan_node
        if node is None or not (node.eligible or (node.role is Role.MASTER and node.up)):
            node = self._scan_node = self._pick_reader()
        return node

    def _no_reader_message(self) -> str:
        policy = self._config.read_policy
        if policy is ReadPolicy.MASTER or policy is ReadPolicy.PREFER_MASTER:
            return f"MASTERDOWN ambassador: master {self._backends.master.address} is unavailable"
        return f"ERR ambassador: no healthy replica for a read under read policy {policy}"

    def _send_master(
        self,
        frame: bytes,
        action: Action,
        touched: dict[Link, list[bytes]],
        before: asyncio.Task[None] | None = None,
        in_transaction: bool = False,
    ) -> None:
        backends = self._backends
        if backends.promotion_seen and action is Action.WRITE and not in_transaction:
            # A failover is under way: a write sent to the old master now would be lost when
            # Sentinel demotes it. Hold it (and everything after it) until the switch.
            self._enqueue(
                Pending(None, b"", frame, action, True, time.perf_counter(), deferred=True)
            )
            self._blocked = True
            return
        master = backends.master
        if not master.up and master not in self._conns:
            self._answer(
                error_reply(f"MASTERDOWN ambassador: master {master.address} is unavailable"),
                route="error",
            )
            if before is not None:
                before.cancel()
            return
        self._send(master, frame, action, touched, before=before, in_transaction=in_transaction)

    def _send(
        self,
        node: Node,
        frame: bytes,
        action: Action,
        touched: dict[Link, list[bytes]],
        keep_frame: bool = False,
        before: asyncio.Task[None] | None = None,
        in_transaction: bool = False,
        retryable: bool = True,
    ) -> None:
        upstream = self._conns.get(node)
        if upstream is None or upstream.stale:
            upstream = self._connection(node, touched)
        parts = touched.get(upstream)
        if parts is None:
            touched[upstream] = [frame]
        else:
            parts.append(frame)
        write = node.role is _MASTER_ROLE and action in _WRITE_ACTIONS
        if write:
            self._note_writes(1)
        retry_write = retryable and action is _WRITE and not in_transaction
        node.outstanding += 1  # undone in _account or when re-routed (as in _enqueue)
        # Positional: keyword arguments cost measurably on a path taken once per command.
        self._queue.append(
            Pending(
                upstream,
                b"",
                frame if (keep_frame and retryable) or retry_write else None,
                action,
                True,
                _perf_counter(),
                before,
                write,
                retry_write,
            )
        )

    def _connection(self, node: Node, touched: dict[Link, list[bytes]]) -> Link:
        upstream: Link | None = self._conns.get(node)
        if upstream is not None and not upstream.stale:
            return upstream
        if upstream is not None:
            # Replies still owed on the old connection are read by the pump; it is closed
            # when the session ends.
            del self._conns[node]
            self._retired.append(upstream)
        if self._shared_ok:
            # Nothing to replay: the prelude holds at most the library labels (_library_info).
            upstream = node.lane(self._protocol)
            upstream.listener = self._drain
            upstream.direct = self._direct_reply
            self._conns[node] = upstream
            return upstream
        upstream = node.lease()
        if self._write_blocked:
            upstream.pause_reading()  # as the session's other connections are
        upstream.listener = self._drain
        upstream.backpressure = self._upstream_backpressure
        self._conns[node] = upstream
        for key in (*_PRELUDE_ORDER, *sorted(set(self._prelude) - set(_PRELUDE_ORDER))):
            frame = self._prelude.get(key)
            if frame is not None:
                self._send_unanswered(upstream, frame, touched)
        return upstream

    def _answer(self, reply: bytes, route: str = "local") -> None:
        self._enqueue(Pending(None, reply, None, Action.MASTER, True, time.perf_counter()))
        metrics.COMMAND_STATS.route(route).count(error=reply[:1] == b"-")

    def _note_writes(self, count: int) -> None:
        """``count`` writes sent to the master (read-your-writes and WAIT bookkeeping)."""
        self._pending_writes += count
        self._wrote = True
        self._need_offset = None
        if self._shared_ok:
            self._wrote_shared = True

    def _commands_in_flight(self) -> int:
        return sum(pending.count for pending in self._queue)

    def _enqueue(self, pending: Pending) -> None:
        if pending.upstream is not None:
            pending.upstream.node.outstanding += 1  # undone in _account or when re-routed
        self._queue.append(pending)

    # -- replies, in order ----------------------------------------------------------------

    def _drain(self) -> None:
        """Deliver every reply that is ready, oldest command first; never waits."""
        if self._slow_task is not None or self._finished:
            return
        queue = self._queue
        while queue:
            pending = queue[0]
            if pending.before is not None and not pending.before.done():
                self._slow(pending, None)
                break
            upstream = pending.upstream
            if type(upstream) is Lane:
                counts = upstream.counts
                if not counts:
                    if upstream.closed:
                        self._slow(pending, None)
                    break  # the head's reply has not arrived
                ready = counts[0]
                if (
                    ready == 1
                    and pending.count == 1
                    and pending.forward
                    and upstream.replies[0][0] != _MINUS
                ):
                    # The usual case, one plain reply: no error to look at, nothing to cut.
                    queue.popleft()
                    self._settle(upstream, 1, pending.write, pending.started)
                    self._emit(upstream.take_piece())
                    continue
                if ready > 1 and self._take_piece(upstream):
                    continue
            if pending.count > 1:
                pending = self._peel(pending)
            if upstream is None:
                if pending.resend_frame() is not None:
                    self._slow(pending, None)  # re-route a read / a held write
                    break
                reply = pending.literal
            else:
                try:
                    if upstream.streaming:
                        if not self._stream(pending, upstream):
                            break
                        continue
                    found = upstream.try_reply()
                    if (
                        found is None
                        and pending.forward
                        and upstream.buffered >= _STREAM_AT
                        and upstream.head_kind not in b"->"
                    ):
                        # Incomplete and large: everything buffered belongs to this reply.
                        if not self._stream(pending, upstream):
                            break
                        continue
                except UpstreamProtocolError as exc:
                    upstream.abort(str(exc))
                    found = None
                if found is None:
                    if upstream.closed:
                        self._slow(pending, None)
                    break
                reply = found
                if pending.forward:
                    if reply[:1] == b">":
                        self._emit(reply)  # RESP3 push (e.g. tracking): pass through
                        continue
                    if reply[:1] == b"-" and self._special_error(pending, reply):
                        self._slow(pending, reply)
                        break
            queue.popleft()
            self._account(pending, reply)
            if pending.applies is not None and reply[:1] == b"*" and reply[:3] != b"*-1":
                self._apply_after_exec(pending)
            if pending.forward:
                self._emit(reply)
        if self._finished:
            return
        if not queue:
            self._forward_idle_pushes()
        self._flush()
        if not queue:
            self._all_delivered()

    def _direct_reply(self, lane: Lane, piece: bytes, count: int) -> bool:
        """Replies the shared connection has just found for ``lane`` (``count`` of them, plain
        ones, with nothing of the lane's waiting before them): written to the client at once
        when they answer the one command group this session owes and nothing else is under
        way. False: they go the usual way (the lane keeps them, the drain delivers them)."""
        queue = self._queue
        if len(queue) != 1 or self._out or not self._shared_ok:
            return False
        pending = queue[0]
        if (
            pending.upstream is not lane
            or pending.count != count
            or not pending.forward
            or pending.before is not None
            or self._slow_task is not None
            or self._reading_paused
            or self._blocked
            or self._closing
            or self._pipe_pending is not None
        ):
            return False
        queue.popleft()
        if count != 1:
            self._settle(lane, count, count if pending.write else 0, pending.started)
        else:
            # _settle for one reply, written out: this runs for every -P 1 request.
            now = _perf_counter()
            node = lane.node
            node.outstanding -= 1
            if pending.write:
                self._pending_writes -= 1
                self._last_write_ack = now
            latencies = node.stats.latencies
            latencies.append(now - pending.started)
            if len(latencies) >= _FOLD_AT:
                node.stats.fold()
            if pending.frame is None and pending.batch is None and pending.applies is None:
                # Nothing refers to it any more, and every field a single command forwarded
                # by the fast path does not set is still at its default: kept for the next
                # one (a Pending costs more to make than to refill).
                self._spare = pending
        if not self._client_gone:
            self._transport.write(piece)  # (may call pause_writing: nothing here depends on it)
        return True

    def _all_delivered(self) -> None:
        """Everything owed has reached the client: what waited for that can go on."""
        if self._reading_paused and not self._closing:
            self._resume_client()
            if (
                self._held_back
                and not self._blocked
                and not self._write_blocked
                and self._pipe_pending is None
            ):
                self._held_back = False
                self._process()  # commands held back by the in-flight limit
                if self._finished:
                    return
        if self._pipe_pending is not None:
            self._start_pipe()
        elif self._blocked:
            self._blocked = False
            self._resume_client()
            if self._buf:
                self._process()
        elif self._closing:
            self._finish()

    def _apply_after_exec(self, pending: Pending) -> None:
        assert pending.applies is not None and pending.upstream is not None
        touched: dict[Link, list[bytes]] = {}
        self._remember_state(pending.applies, pending.upstream.node, touched)
        self._send_touched(touched)

    def _take_piece(self, lane: Lane) -> bool:
        """Several replies that arrived together for the commands at the head of the queue:
        passed on as one piece, accounted for together. False when those commands are not all
        plain ones waiting on this lane (the replies are then taken one by one)."""
        need = lane.ready
        queue = self._queue
        covered = 0
        for pending in queue:
            if pending.upstream is not lane or pending.before is not None or not pending.forward:
                return False
            covered += pending.count
            if covered >= need:
                break
        if covered < need:
            return False
        started = queue[0].started
        writes = 0
        left = need
        while left:
            head = queue[0]
            if head.count <= left:
                queue.popleft()
                left -= head.count
                if head.write:
                    writes += head.count
            else:  # the rest of this group's replies are still to come
                head.count -= left
                head.batch_index += left
                if head.write:
                    writes += left
                left = 0
        self._settle(lane, need, writes, started)
        self._emit(lane.take_piece())
        return True

    def _settle(self, lane: Lane, count: int, writes: int, started: float) -> None:
        """The lane's next piece answers ``count`` plain commands (``writes`` of them writes),
        already taken off the queue: account for them (the caller passes the piece on)."""
        node = lane.node
        node.outstanding -= count
        now = _perf_counter()
        if writes:
            self._pending_writes -= writes
            self._last_write_ack = now
        node.stats.observe(now - started, count)

    def _forward_idle_pushes(self) -> None:
        """RESP3 pushes (CLIENT TRACKING invalidations) that arrive while nothing is owed are
        passed on at once rather than held until the next reply."""
        if self._shared_ok:
            return  # no pushes on shared connections (their clients have no such state)
        for upstream in self._conns.values():
            while upstream.head_kind == _PUSH and not upstream.streaming:
                try:
                    push = upstream.try_reply()
                except UpstreamProtocolError as exc:
                    upstream.abort(str(exc))
                    break
                if push is None:
                    break
                self._emit(push)

    def _stream(self, pending: Pending, upstream: Link) -> bool:
        """Pass a large head-of-line reply on as it arrives instead of holding it whole.
        True when it is complete (and accounted for)."""
        chunk, complete = upstream.stream_chunk()
        if chunk:
            self._emit(chunk)
            self._flush()
        if not complete:
            if upstream.closed:
                # Part of the reply is already with the client: no way to retry or to resync
                # the client's protocol stream. Close it.
                log.warning(
                    "upstream lost in the middle of a reply",
                    extra={"node": str(upstream.node.address)},
                )
                self._finish()
            return False
        self._queue.popleft()
        self._account(pending, b"+")
        return True

    def _special_error(self, pending: Pending, reply: bytes) -> bool:
        upstream = pending.upstream
        assert upstream is not None
        if reply.startswith(b"-NOSCRIPT"):
            return upstream.node.role is Role.REPLICA and pending.action is Action.READ
        if reply.startswith(b"-READONLY"):
            return upstream.node.role is Role.MASTER
        return False

    def _emit(self, reply: bytes) -> None:
        self._out.append(reply)
        self._out_size += len(reply)
        if self._out_size >= _OUT_FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._out:
            if not self._client_gone:
                self._transport.write(b"".join(self._out) if len(self._out) > 1 else self._out[0])
            self._out.clear()
            self._out_size = 0

    def _account(self, pending: Pending, reply: bytes, answered_by: Node | None = None) -> None:
        """The reply's bookkeeping: counters, latency, read-your-writes. ``answered_by``: the
        node that answered a command re-sent by the slow path (no longer linked to it)."""
        upstream = pending.upstream
        if upstream is not None:
            upstream.node.outstanding -= 1
        now = _perf_counter()
        if pending.write:
            self._pending_writes -= 1
            self._last_write_ack = now
        if not pending.forward or pending.literal:
            return  # (an answer of the ambassador's own was counted when given: _answer)
        if answered_by is not None:
            stats = answered_by.stats
        else:
            stats = _LOCAL_STATS if upstream is None else upstream.node.stats
        stats.observe(now - pending.started, 1, reply[:1] == b"-")

    # -- the slow path: one head-of-line command that needs to wait -----------------------

    def _slow(self, pending: Pending, error: bytes | None) -> None:
        self._flush()
        self._slow_task = asyncio.get_running_loop().create_task(self._slow_run(pending, error))

    async def _slow_run(self, pending: Pending, error: bytes | None) -> None:
        try:
            self._answered_by = None
            reply = await self._resolve(pending, error)
            if reply is not None and self._queue and self._queue[0] is pending:
                self._queue.popleft()
                self._account(pending, reply, self._answered_by)
                if pending.forward:
                    self._emit(reply)
        except Exception:
            log.exception("slow path failed")
            self._begin_closing()
        finally:
            self._slow_task = None
            self._drain()

    async def _resolve(self, pending: Pending, error: bytes | None) -> bytes | None:
        """The reply for the head command, or None when it can now take the fast path."""
        if pending.before is not None and not pending.before.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pending.before
            return None
        if pending.deferred:
            return await self._after_failover(pending)
        upstream = pending.upstream
        if upstream is None:
            return await self._retry(pending)
        if error is not None:
            if error.startswith(b"-NOSCRIPT"):
                return await self._after_noscript(pending, error)
            return await self._after_readonly(pending, error)
        return await self._after_lost(pending, upstream)

    async def _after_lost(self, pending: Pending, upstream: Link) -> bytes:
        node = upstream.node
        upstream.close()
        if self._conns.get(node) is upstream:
            del self._conns[node]
            self._retired.append(upstream)
        if node.role is Role.REPLICA:
            node.eligible = False  # out of rotation until the health check says otherwise
        if pending.action in (Action.READ, Action.SCAN) and pending.resend_frame() is not None:
            metrics.RETRIES.labels("upstream_lost").inc()
            return await self._retry(pending, exclude=node)
        if not pending.forward:
            return b""
        if not upstream.connected:
            if node.role is Role.MASTER:
                node.up = False  # fail the next commands fast; the health check confirms
            return error_reply(
                f"MASTERDOWN ambassador: {node.role} {node.address} is unavailable "
                f"({upstream.error})"
            )
        log.warning(
            "upstream lost with a command in flight",
            extra={"node": str(node.address), "reason": upstream.error},
        )
        return error_reply(
            f"ERR ambassador: connection to {node.role} {node.address} lost "
            "before the reply (the command may or may not have run)"
        )

    async def _retry(self, pending: Pending, exclude: Node | None = None) -> bytes:
        """Re-send a read on a fresh connection to another eligible node (or the master)."""
        frame = pending.resend_frame()
        assert frame is not None
        self._unlink(pending)
        last_error = "no node available"
        for _ in range(_RETRIES + 1):
            node = self._backends.pick_reader(self._config.read_policy, exclude=exclude)
            if node is None and self._backends.master.up:
                node = self._backends.master
            if node is None:
                break
            try:
                return await self._one_shot(node, frame)
            except _LOST as exc:
                last_error = f"{node.address}: {exc}"
                if node.role is Role.REPLICA:
                    node.eligible = False
                exclude = node
        return error_reply(f"ERR ambassador: read failed on every node ({last_error})")

    def _unlink(self, pending: Pending) -> None:
        if pending.upstream is not None:
            pending.upstream.node.outstanding -= 1
            pending.upstream = None

    async def _one_shot(self, node: Node, frame: bytes) -> bytes:
        """Send one command on a separate connection (with this session's state) and wait for
        its reply; the session's own connections keep their reply order untouched."""
        upstream = await node.connect()
        prelude = [self._prelude[k] for k in _PRELUDE_ORDER if k in self._prelude]
        try:
            upstream.send(b"".join([*prelude, frame]))
            reply = b""
            async with asyncio.timeout(self._config.upstream_timeout):
                for _ in range(len(prelude) + 1):
                    found = upstream.try_reply()
                    while found is None:
                        await upstream.wait()
                        found = upstream.try_reply()
                    reply = found
            self._answered_by = node
            return reply
        finally:
            node.release(upstream, reusable=not prelude)

    async def _after_noscript(self, pending: Pending, reply: bytes) -> bytes:
        """The script cache is per node: the replica missed a SCRIPT LOAD or the script was
        only ever EVALed on the master. The master has it (or says so itself)."""
        metrics.RETRIES.labels("noscript").inc()
        frame = pending.resend_frame()
        assert frame is not None
        self._unlink(pending)
        try:
            return await self._one_shot(self._backends.master, frame)
        except _LOST:
            return reply

    async def _wait_for_switch(self) -> bool:
        backends = self._backends
        changed = backends.master_changed
        try:
            async with asyncio.timeout(2.0):
                await changed.wait()
                while not backends.master.up:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            return False
        return True

    async def _after_readonly(self, pending: Pending, reply: bytes) -> bytes:
        """The master we wrote to is a replica now (a failover happened). With Sentinel: ask
        it again, wait briefly for the new master, and re-send the write there; it did not
        run on the replica, so this cannot apply it twice."""
        backends = self._backends
        backends.resolve_requested.set()
        frame = pending.resend_frame()
        if not self._config.sentinels or not pending.retry_write or frame is None:
            return reply
        if not await self._wait_for_switch():
            return reply
        metrics.RETRIES.labels("readonly").inc()
        self._unlink(pending)
        try:
            return await self._one_shot(backends.master, frame)
        except _LOST:
            return reply

    async def _after_failover(self, pending: Pending) -> bytes:
        frame = pending.resend_frame()
        assert frame is not None
        await self._wait_for_switch()
        master = self._backends.master
        if not master.up:
            return error_reply(f"MASTERDOWN ambassador: master {master.address} is unavailable")
        try:
            return await self._one_shot(master, frame)
        except _LOST as exc:
            return error_reply(f"MASTERDOWN ambassador: master {master.address}: {exc}")

    # -- pass-through mode (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR) --------------------

    def _enter_pipe(self, frame: bytes, touched: dict[Link, list[bytes]]) -> None:
        """Pub/sub and MONITOR replies arrive unasked: once every earlier reply is delivered
        the session becomes a byte pipe to its master connection."""
        self._dirty = True
        master = self._backends.master
        upstream = self._connection(master, touched)
        touched.setdefault(upstream, []).append(frame)
        self._pipe_pending = upstream
        self._blocked = True

    def _start_pipe(self) -> None:
        upstream = self._pipe_pending
        assert upstream is not None
        self._pipe_pending = None
        self._pipe = upstream
        self._conns = {node: up for node, up in self._conns.items() if up is not upstream}
        leftover = upstream.take_buffered()
        if leftover and not self._client_gone:
            self._transport.write(leftover)
        upstream.raw_sink = self._pipe_to_client
        upstream.listener = self._pipe_event
        rest = bytes(self._buf)
        self._buf.clear()
        self._resume_client()
        if rest:
            with contextlib.suppress(ConnectionError):
                upstream.send(rest)
        self._pipe_event()

    def _pipe_to_client(self, data: bytes) -> None:
        if not self._client_gone:
            self._transport.write(data)

    def _pipe_event(self) -> None:
        pipe = self._pipe
        if pipe is not None and pipe.closed:
            self._finish()

    # -- lifecycle ------------------------------------------------------------------------

    def _begin_closing(self) -> None:
        if not self._closing:
            self._closing = True
            self.closing_since = time.monotonic()

    def _pause_client(self) -> None:
        if not self._reading_paused and not self._client_gone:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_client(self) -> None:
        if self._reading_paused and not self._client_gone:
            self._reading_paused = False
            if not self._write_blocked:
                self._transport.resume_reading()

    def abort(self) -> None:
        """Close now, whatever is still owed (shutdown grace exhausted)."""
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._flush()
        if self._slow_task is not None:
            self._slow_task.cancel()
        clean = not self._dirty and not self._queue and not self._in_multi and not self._watching
        for node, upstream in self._conns.items():
            node.release(upstream, reusable=clean)
        self._conns.clear()
        for upstream in self._retired:
            upstream.close()
        if self._pipe is not None:
            self._pipe.listener = None
            self._pipe.raw_sink = None
            self._pipe.close()
        for pending in self._queue:
            if pending.upstream is not None:
                pending.upstream.node.outstanding -= pending.count
        self._queue.clear()
        if not self._client_gone:  # (also before connection_made: a shutdown can come first)
            self._transport.close()
        self._on_finished(self)
