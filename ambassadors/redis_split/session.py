"""One client connection: its commands routed to nodes, its replies returned in request order,
and all of its connection state (database, auth, protocol, name, MULTI/WATCH, subscriptions,
read-your-writes) in one place.

Each session leases its own upstream connections (one per node it touches), so per-connection
state on the Redis side is simply this client's state, replayed when a new node is touched.
Commands are written to upstreams as they are scanned; a single pump task reads the replies
back in the order the commands arrived, whichever node each went to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from prometheus_client import Counter, Histogram

from . import metrics
from .backends import Backends, Node, Role
from .config import Config, ReadPolicy
from .resp import (
    Command,
    ProtocolError,
    RequestScanner,
    UpstreamProtocolError,
    error_reply,
)
from .router import Action, classify
from .upstream import Upstream

log = logging.getLogger("redis_ambassador.session")

_READ_CHUNK = 64 * 1024
_MAX_IN_FLIGHT = 4096  # commands awaiting replies before we stop reading from the client
_OUT_FLUSH = 64 * 1024
_RETRIES = 2
# The order connection state is replayed in on a new node: credentials first.
_PRELUDE_ORDER = ("auth", "hello", "setname", "setinfo", "select")
_OK = b"+OK\r\n"


@dataclass(slots=True)
class Pending:
    """A command sent (or answered locally) whose reply the client has not received yet."""

    upstream: Upstream | None  # None: ``literal`` is the reply
    literal: bytes
    frame: bytes | None  # kept for reads, so they can be re-sent to another node
    action: Action
    forward: bool  # False: a mirrored state command on a secondary connection; reply dropped
    started: float
    before: asyncio.Task[None] | None = None
    write: bool = False
    # A plain write outside MULTI/WATCH: on -READONLY it did not run, so after a failover it
    # can be re-sent to the new master.
    retry_write: bool = False


class _Metric:
    """Cached labelled children: labels() per command would cost more than the forwarding."""

    commands: ClassVar[dict[tuple[str, str], Counter]] = {}
    latency: ClassVar[dict[str, Histogram]] = {}

    @classmethod
    def count(cls, route: str, result: str, seconds: float | None) -> None:
        key = (route, result)
        counter = cls.commands.get(key)
        if counter is None:
            counter = cls.commands[key] = metrics.COMMANDS.labels(route, result)
        counter.inc()
        if seconds is not None:
            histogram = cls.latency.get(route)
            if histogram is None:
                histogram = cls.latency[route] = metrics.LATENCY.labels(route)
            histogram.observe(seconds)


class Session:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        backends: Backends,
        config: Config,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._backends = backends
        self._config = config
        self._scanner = RequestScanner()
        self._conns: dict[Node, Upstream] = {}
        self._retired: list[Upstream] = []
        self._prelude: dict[str, bytes] = {}
        self._in_multi = False
        self._watching = False
        self._dirty = False  # upstream connections carry state another client must not inherit
        self._scan_node: Node | None = None
        # read-your-writes
        self._pending_writes = 0
        self._last_write_ack = 0.0
        self._wrote = False
        self._need_offset: int | None = None
        # reply pipeline
        self._queue: deque[Pending] = deque()
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._out: list[bytes] = []
        self._out_size = 0
        self._closing = False  # no more commands: drain replies, then close
        self._pipe_frame: bytes | None = None
        self._stopping = False
        self._read_task: asyncio.Task[None] | None = None
        self._waiting_for_client = False

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Graceful shutdown: read no more commands; replies in flight are still delivered."""
        self._stopping = True
        if self._waiting_for_client and self._read_task is not None:
            self._read_task.cancel()

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump())
        self._read_task = asyncio.create_task(self._read_loop())
        try:
            await self._read_task
        except (ConnectionError, OSError):
            pass  # the client went away
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self._closing = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(pump, self._config.shutdown_grace)
            except (TimeoutError, ConnectionError, OSError):
                pump.cancel()
            except Exception:
                log.exception("reply pump failed")
            if self._pipe_frame is not None and not self._stopping:
                with contextlib.suppress(ConnectionError, OSError):
                    await self._pipe()
            self._release_all()
            self._writer.close()

    def _release_all(self) -> None:
        clean = not self._dirty and not self._queue and not self._in_multi and not self._watching
        for node, upstream in self._conns.items():
            node.release(upstream, reusable=clean and self._pipe_frame is None)
        self._conns.clear()
        for upstream in self._retired:
            upstream.close()

    # -- reading commands -----------------------------------------------------------------

    async def _read_loop(self) -> None:
        buf = bytearray()
        pos = 0
        idle = self._config.client_idle_timeout
        while not self._closing and not self._stopping:
            self._waiting_for_client = True
            try:
                if idle > 0 and not self._queue:
                    try:
                        async with asyncio.timeout(idle):
                            chunk = await self._reader.read(_READ_CHUNK)
                    except TimeoutError:
                        return
                else:
                    chunk = await self._reader.read(_READ_CHUNK)
            finally:
                self._waiting_for_client = False
            if not chunk:
                return
            buf += chunk
            touched: dict[Upstream, list[bytes]] = {}
            try:
                while not self._closing:
                    command = self._scanner.scan(buf, pos)
                    if command is None:
                        break
                    pos = command.end
                    frame = bytes(buf[command.start : command.end])
                    await self._dispatch(command, frame, touched)
                    if self._pipe_frame is not None:
                        # Everything after SUBSCRIBE/MONITOR goes through untouched.
                        self._pipe_frame += bytes(buf[pos:])
                        pos = len(buf)
                        self._closing = True
            except ProtocolError as exc:
                metrics.REJECTED_CLIENTS.labels("protocol").inc()
                log.info("protocol error, closing client", extra={"reason": str(exc)})
                self._answer(error_reply(str(exc)))
                self._closing = True
            finally:
                for upstream, parts in touched.items():
                    with contextlib.suppress(ConnectionError):
                        upstream.send(b"".join(parts) if len(parts) > 1 else parts[0])
            if pos:
                del buf[:pos]
                self._scanner.rebase(pos)
                pos = 0
            while len(self._queue) > _MAX_IN_FLIGHT and not self._closing:
                self._space.clear()
                await self._space.wait()

    # -- routing one command --------------------------------------------------------------

    async def _dispatch(
        self, command: Command, frame: bytes, touched: dict[Upstream, list[bytes]]
    ) -> None:
        action = classify(command, self._backends.table)
        if self._in_multi or self._watching:
            await self._dispatch_transaction(action, frame, touched)
            return
        if action is Action.READ or action is Action.SCAN:
            node = self._pick_scan_node() if action is Action.SCAN else self._pick_reader()
            if node is None:
                self._answer(error_reply(self._no_reader_message()), route="error")
                return
            await self._send(node, frame, action, touched, keep_frame=True)
        elif action is Action.QUIT:
            self._answer(_OK)
            self._closing = True
        elif action is Action.SUBSCRIBE:
            self._pipe_frame = frame
            self._dirty = True
        elif action is Action.STATE or action is Action.RESET:
            await self._dispatch_state(command, action, frame, touched)
        elif action is Action.BROADCAST:
            flush = command.args[:1] != () and command.args[0].lower() == b"flush"
            task = asyncio.create_task(self._backends.broadcast(frame, flush))
            await self._send_master(frame, action, touched, before=task)
        else:
            if action is Action.MULTI:
                self._in_multi = True
            elif action is Action.WATCH:
                self._watching = True
            if command.name == b"client":
                self._dirty = True  # CLIENT TRACKING/REPLY/... change the connection
            await self._send_master(frame, action, touched)

    async def _dispatch_transaction(
        self, action: Action, frame: bytes, touched: dict[Upstream, list[bytes]]
    ) -> None:
        """Inside MULTI or after WATCH everything goes to the master connection, in order."""
        if action is Action.EXEC:
            self._in_multi = self._watching = False
        elif action is Action.UNWATCH and not self._in_multi:
            self._watching = False
        elif action is Action.MULTI:
            self._in_multi = True
        elif action is Action.RESET:
            self._in_multi = self._watching = False
            self._prelude.clear()
        elif action is Action.QUIT:
            self._answer(_OK)
            self._closing = True
            return
        send_as: Action
        if action is Action.EXEC or action is Action.BLOCKING:
            send_as = action
        else:
            send_as = Action.MASTER if action is Action.READ else Action.WRITE
        await self._send_master(frame, send_as, touched)

    async def _dispatch_state(
        self, command: Command, action: Action, frame: bytes, touched: dict[Upstream, list[bytes]]
    ) -> None:
        """SELECT/AUTH/HELLO/CLIENT SETNAME/RESET: the master's reply goes to the client, the
        same command is applied to this session's other connections and remembered for the
        nodes it touches later."""
        self._dirty = True
        if action is Action.RESET:
            self._prelude.clear()
            self._in_multi = self._watching = False
        else:
            key = command.name.decode()
            if command.name == b"client":
                key = command.args[0].lower().decode() if command.args else "client"
            self._prelude[key] = frame
        master = self._backends.master
        replier = master
        if not master.up and master not in self._conns:
            # Master down: the state still matters for reads on replicas; one of them answers.
            replier = self._backends.pick_reader(self._config.read_policy) or master
        if replier is master:
            await self._send_master(frame, Action.MASTER, touched)
        else:
            await self._send(replier, frame, Action.MASTER, touched)
        for node, upstream in list(self._conns.items()):
            if node is replier or upstream.stale:
                continue
            touched.setdefault(upstream, []).append(frame)
            self._enqueue(Pending(upstream, b"", None, Action.STATE, False, time.perf_counter()))

    def _pick_reader(self) -> Node | None:
        backends = self._backends
        policy = self._config.read_policy
        if self._config.read_your_writes and self._wrote:
            master_up = backends.master.up
            if self._pending_writes:
                if master_up:
                    return backends.master
            elif self._config.read_your_writes_window > 0:
                since = time.monotonic() - self._last_write_ack
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

    async def _send_master(
        self,
        frame: bytes,
        action: Action,
        touched: dict[Upstream, list[bytes]],
        before: asyncio.Task[None] | None = None,
    ) -> None:
        backends = self._backends
        if backends.promotion_seen:
            # A failover is under way: a write sent to the old master now would be lost
            # when Sentinel demotes it. Wait (bounded) for the switch.
            changed = backends.master_changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await changed.wait()
                    while not backends.master.up:
                        await asyncio.sleep(0.02)
        master = backends.master
        if not master.up and master not in self._conns:
            self._answer(
                error_reply(f"MASTERDOWN ambassador: master {master.address} is unavailable"),
                route="error",
            )
            if before is not None:
                before.cancel()
            return
        await self._send(master, frame, action, touched, before=before)

    async def _send(
        self,
        node: Node,
        frame: bytes,
        action: Action,
        touched: dict[Upstream, list[bytes]],
        keep_frame: bool = False,
        before: asyncio.Task[None] | None = None,
    ) -> None:
        upstream = await self._connection(node, touched)
        if upstream is None:
            if keep_frame:
                # The chosen node refused a connection: let the pump re-route the read.
                self._enqueue(
                    Pending(None, b"", frame, action, True, time.perf_counter(), before=before)
                )
            else:
                self._answer(
                    error_reply(f"MASTERDOWN ambassador: cannot connect to {node.address}"),
                    route="error",
                )
            return
        touched.setdefault(upstream, []).append(frame)
        write = node.role is Role.MASTER and action not in (Action.READ, Action.SCAN)
        write = write and action is not Action.MASTER
        retry_write = action is Action.WRITE and not self._in_multi and not self._watching
        if write:
            self._pending_writes += 1
            self._wrote = True
            self._need_offset = None
        self._enqueue(
            Pending(
                upstream,
                b"",
                frame if keep_frame or retry_write else None,
                action,
                True,
                time.perf_counter(),
                before=before,
                write=write,
                retry_write=retry_write,
            )
        )

    async def _connection(
        self, node: Node, touched: dict[Upstream, list[bytes]]
    ) -> Upstream | None:
        upstream = self._conns.get(node)
        if upstream is not None and not upstream.stale:
            return upstream
        if upstream is not None:
            # Replies still owed on the old connection are read by the pump; it is closed
            # when the session ends.
            del self._conns[node]
            self._retired.append(upstream)
        try:
            upstream = await node.connect()
        except (OSError, TimeoutError) as exc:
            log.warning(
                "upstream connect failed", extra={"node": str(node.address), "reason": str(exc)}
            )
            return None
        self._conns[node] = upstream
        self._replay_prelude(upstream, touched)
        return upstream

    def _replay_prelude(self, upstream: Upstream, touched: dict[Upstream, list[bytes]]) -> None:
        for key in (*_PRELUDE_ORDER, *sorted(set(self._prelude) - set(_PRELUDE_ORDER))):
            frame = self._prelude.get(key)
            if frame is not None:
                touched.setdefault(upstream, []).append(frame)
                self._enqueue(
                    Pending(upstream, b"", None, Action.STATE, False, time.perf_counter())
                )

    def _answer(self, reply: bytes, route: str = "local") -> None:
        self._enqueue(Pending(None, reply, None, Action.MASTER, True, time.perf_counter()))
        _Metric.count(route, "error" if reply[:1] == b"-" else "ok", None)

    def _enqueue(self, pending: Pending) -> None:
        if pending.upstream is not None:
            pending.upstream.node.outstanding += 1  # undone in _account or when re-routed
        self._queue.append(pending)
        self._wakeup.set()

    # -- replies, in order ----------------------------------------------------------------

    async def _pump(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._flush()
                self._space.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            pending = queue[0]
            if pending.before is not None:
                with contextlib.suppress(Exception):
                    await pending.before
            upstream = pending.upstream
            reply: bytes | None
            if upstream is None:
                reply = pending.literal if pending.frame is None else await self._retry(pending)
            else:
                reply = upstream.try_reply()
                if reply is None:
                    reply = await self._await_reply(pending, upstream)
                elif reply[:1] == b">" and pending.forward:
                    self._emit(reply)  # RESP3 push (e.g. tracking): pass through, keep waiting
                    continue
                if pending.forward and reply[:1] == b"-":
                    reply = await self._on_error_reply(pending, reply)
            queue.popleft()
            if len(queue) < _MAX_IN_FLIGHT:
                self._space.set()
            self._account(pending, reply)
            if pending.forward:
                self._emit(reply)

    def _emit(self, reply: bytes) -> None:
        self._out.append(reply)
        self._out_size += len(reply)
        if self._out_size >= _OUT_FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._out:
            self._writer.write(b"".join(self._out))
            self._out.clear()
            self._out_size = 0

    async def _await_reply(self, pending: Pending, upstream: Upstream) -> bytes:
        self._flush()  # never hold finished replies while waiting on the network
        deadline = self._config.upstream_timeout
        if pending.action is Action.BLOCKING or pending.action is Action.EXEC:
            deadline = 0  # BLPOP 0, WAIT, EXEC of a long script: no deadline of ours
        try:
            while True:
                if deadline > 0:
                    async with asyncio.timeout(deadline):
                        await upstream.read_more()
                else:
                    await upstream.read_more()
                reply = upstream.try_reply()
                if reply is not None:
                    if reply[:1] == b">" and pending.forward:
                        self._emit(reply)
                        self._flush()
                        continue
                    return reply
                await self._drain_client()
        except (ConnectionError, OSError, TimeoutError, UpstreamProtocolError) as exc:
            upstream.close()
            node = upstream.node
            if self._conns.get(node) is upstream:
                del self._conns[node]
            if node.role is Role.REPLICA:
                node.eligible = False  # out of rotation until the health check says otherwise
            if pending.frame is not None and not pending.retry_write:
                metrics.RETRIES.labels("upstream_lost").inc()
                return await self._retry(pending, exclude=node)
            if not pending.forward:
                return b""
            log.warning(
                "upstream lost with a command in flight",
                extra={"node": str(node.address), "reason": str(exc) or type(exc).__name__},
            )
            return error_reply(
                f"ERR ambassador: connection to {node.role} {node.address} lost "
                "before the reply (the command may or may not have run)"
            )

    async def _drain_client(self) -> None:
        transport = self._writer.transport
        if transport.get_write_buffer_size() > 4 * _OUT_FLUSH:
            await self._writer.drain()

    async def _retry(self, pending: Pending, exclude: Node | None = None) -> bytes:
        """Re-send a read on a fresh connection to another eligible node (or the master)."""
        assert pending.frame is not None
        if pending.upstream is not None:
            pending.upstream.node.outstanding -= 1
            pending.upstream = None
        last_error = "no node available"
        for _ in range(_RETRIES + 1):
            node = self._backends.pick_reader(self._config.read_policy, exclude=exclude)
            if node is None and self._backends.master.up:
                node = self._backends.master
            if node is None:
                break
            try:
                return await self._one_shot(node, pending.frame)
            except (ConnectionError, OSError, TimeoutError, UpstreamProtocolError) as exc:
                last_error = f"{node.address}: {exc}"
                if node.role is Role.REPLICA:
                    node.eligible = False
                exclude = node
        return error_reply(f"ERR ambassador: read failed on every node ({last_error})")

    async def _one_shot(self, node: Node, frame: bytes) -> bytes:
        """Send one command on a separate connection (with this session's state) and wait for
        its reply; the session's own connections keep their reply order untouched."""
        upstream = await node.connect()
        try:
            prelude = [self._prelude[k] for k in _PRELUDE_ORDER if k in self._prelude]
            upstream.send(b"".join([*prelude, frame]))
            async with asyncio.timeout(self._config.upstream_timeout):
                reply = b""
                for _ in range(len(prelude) + 1):
                    found = upstream.try_reply()
                    while found is None:
                        await upstream.read_more()
                        found = upstream.try_reply()
                    reply = found
            return reply
        finally:
            node.release(upstream, reusable=not prelude)

    async def _on_error_reply(self, pending: Pending, reply: bytes) -> bytes:
        upstream = pending.upstream
        assert upstream is not None
        if (
            reply.startswith(b"-NOSCRIPT")
            and upstream.node.role is Role.REPLICA
            and pending.frame
            and not pending.retry_write
        ):
            # The script cache is per node: the replica missed a SCRIPT LOAD or the script was
            # only ever EVALed on the master. The master has it (or says so itself).
            metrics.RETRIES.labels("noscript").inc()
            master = self._backends.master
            upstream.node.outstanding -= 1
            pending.upstream = None
            try:
                return await self._one_shot(master, pending.frame)
            except (ConnectionError, OSError, TimeoutError, UpstreamProtocolError):
                return reply
        if reply.startswith(b"-READONLY") and upstream.node.role is Role.MASTER:
            return await self._after_readonly(pending, reply)
        return reply

    async def _after_readonly(self, pending: Pending, reply: bytes) -> bytes:
        """The master we wrote to is a replica now (a failover happened). With Sentinel: ask
        it again, wait briefly for the new master, and re-send the write there; it did not
        run on the replica, so this cannot apply it twice."""
        backends = self._backends
        backends.resolve_requested.set()
        if not self._config.sentinels or not pending.retry_write or pending.frame is None:
            return reply
        changed = backends.master_changed
        try:
            async with asyncio.timeout(2.0):
                await changed.wait()
                while not backends.master.up:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            return reply
        metrics.RETRIES.labels("readonly").inc()
        try:
            return await self._one_shot(backends.master, pending.frame)
        except (ConnectionError, OSError, TimeoutError, UpstreamProtocolError):
            return reply

    def _account(self, pending: Pending, reply: bytes) -> None:
        upstream = pending.upstream
        if upstream is not None:
            upstream.node.outstanding -= 1
        if pending.write:
            self._pending_writes -= 1
            self._last_write_ack = time.monotonic()
        if not pending.forward:
            return
        route = "local" if upstream is None else upstream.node.role.value
        result = "error" if reply[:1] == b"-" else "ok"
        _Metric.count(route, result, time.perf_counter() - pending.started)

    # -- pass-through mode (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR) --------------------

    async def _pipe(self) -> None:
        """Pub/sub and MONITOR replies arrive unasked: from here on the session is a byte pipe
        to a dedicated master connection. Everything before was already answered in order."""
        assert self._pipe_frame is not None
        master = self._backends.master
        touched: dict[Upstream, list[bytes]] = {}
        upstream = await self._connection(master, touched)
        if upstream is None:
            self._writer.write(error_reply(f"MASTERDOWN ambassador: master {master.address}"))
            return
        # Prelude replies for a fresh connection are swallowed before the pipe starts.
        swallow = sum(len(parts) for parts in touched.values())
        for parts in touched.values():
            upstream.send(b"".join(parts))
        for _ in range(swallow):
            while upstream.try_reply() is None:
                await upstream.read_more()
        self._queue.clear()
        upstream.send(self._pipe_frame)
        leftover = upstream.take_buffered()
        if leftover:
            self._writer.write(leftover)

        async def upstream_to_client() -> None:
            while data := await upstream.read_raw():
                self._writer.write(data)
                await self._writer.drain()

        async def client_to_upstream() -> None:
            while data := await self._reader.read(_READ_CHUNK):
                upstream.send(data)
                await upstream.drain()

        tasks = [
            asyncio.create_task(upstream_to_client()),
            asyncio.create_task(client_to_upstream()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            upstream.close()
            self._conns.pop(master, None)
