"""The Redis nodes behind the ambassador: their addresses, health, replication lag, idle
connection pools, the command table, and the script cache that must exist on every node."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from enum import StrEnum
from operator import attrgetter
from typing import Any

from . import metrics
from .commands import CommandTable, table_from_command_reply
from .config import Config, ReadPolicy
from .control import Address, ControlClient, ReplyError, Value, decode, parse_info
from .shared import Lane, SharedConnection
from .upstream import Upstream

log = logging.getLogger("redis_ambassador.backends")

_POOL_MAX = 64


def _lane_count(conn: SharedConnection) -> int:
    return conn.lanes


# Master offset samples kept for read-your-writes and the time-based lag gate.
_SAMPLES = 2048


# Looked up once: an enum member read through its class is a slow attribute lookup, and
# pick_reader runs for every read.
_MASTER, _PREFER_MASTER = ReadPolicy.MASTER, ReadPolicy.PREFER_MASTER
_PREFER_REPLICA, _ANY = ReadPolicy.PREFER_REPLICA, ReadPolicy.ANY
_eligible = attrgetter("eligible")


class Role(StrEnum):
    MASTER = "master"
    REPLICA = "replica"


class Node:
    """One Redis server. Its address may change (Sentinel); ``generation`` then moves on so
    connections opened to the old address are dropped instead of reused."""

    def __init__(self, role: Role, address: Address, config: Config) -> None:
        self.role = role
        self.label = role.value  # metric label; an enum's .value is a slow property lookup
        self.stats = metrics.COMMAND_STATS.route(self.label)  # replies it gave, by latency
        self.address = address
        self.generation = 0
        self._config = config
        self.control = ControlClient(
            address, max(config.connect_timeout, 1.0), config.upstream_password
        )
        self.control_lock = asyncio.Lock()
        self.up = False  # answers health checks
        self.eligible = False  # replica: passes the lag gate; master: up and writable
        self.writable = True
        # Replica answers and has a dataset (not loading): usable, stale, while the master is
        # down. Its link status is then necessarily down, which the lag gate would refuse.
        self.serves_stale = False
        # The script cache to re-load: a failed SCRIPT LOAD/FLUSH broadcast, or a restart
        # (new run_id) that the health checks may not have seen as downtime.
        self.scripts_synced = True
        self.run_id = ""
        self.offset = 0
        self.lag_bytes: int | None = None
        self.lag_seconds: float | None = None
        self.outstanding = 0
        self.idle: list[Upstream] = []
        self.shared: dict[int, list[SharedConnection]] = {2: [], 3: []}  # by RESP version
        self._connecting: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Node({self.role}, {self.address})"

    def move_to(self, address: Address) -> None:
        if address == self.address:
            return
        self.address = address
        self.generation += 1
        self.control.close()
        self.control = ControlClient(address, self.control.timeout, self._config.upstream_password)
        self.up = self.eligible = False
        self.drop_idle()
        self.retire_shared()

    def lease(self) -> Upstream:
        """An idle pooled connection, or a new one (connecting in the background; commands
        sent meanwhile are queued). Never waits, so routing stays synchronous."""
        while self.idle:
            upstream = self.idle.pop()
            if not upstream.stale:
                return upstream
            upstream.close()
        upstream = Upstream(self)
        self._start(upstream.connect)
        return upstream

    def lane(self, protocol: int) -> Lane:
        """A share of one of this node's shared connections for RESP ``protocol`` (see
        ``shared``), opened in the background if needed; the least used one when there are
        several."""
        live = self.shared[protocol]
        if any(conn.stale for conn in live):
            for conn in live:
                if conn.stale:
                    conn.retire()
            live = self.shared[protocol] = [conn for conn in live if not conn.stale]
        if len(live) < self._config.shared_connections:
            conn = SharedConnection(self, protocol)
            self._start(conn.connect)
            live.append(conn)
            return conn.attach()
        return min(live, key=_lane_count).attach()

    def retire_shared(self) -> None:
        for protocol, conns in self.shared.items():
            for conn in conns:
                conn.retire()
            self.shared[protocol] = []

    def _start(self, connect: Callable[[str, int, float], Coroutine[Any, Any, None]]) -> None:
        address = self.address  # resolved by the connect: names follow DNS changes
        task = asyncio.get_running_loop().create_task(
            connect(address.host, address.port, self._config.connect_timeout)
        )
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def connect(self) -> Upstream:
        """A connected upstream (for one-off commands such as retries)."""
        upstream = self.lease()
        try:
            await upstream.ready()
        except ConnectionError:
            upstream.close()
            raise
        return upstream

    def release(self, upstream: Upstream | Lane, reusable: bool) -> None:
        if isinstance(upstream, Lane):
            upstream.close()  # owed replies are read and dropped by the shared connection
            return
        upstream.listener = None
        upstream.raw_sink = None
        upstream.backpressure = None
        if reusable and upstream.idle_clean and not upstream.stale and len(self.idle) < _POOL_MAX:
            upstream.resume_reading()  # its last client may have been a slow reader
            self.idle.append(upstream)
        else:
            upstream.close()

    def drop_idle(self) -> None:
        for upstream in self.idle:
            upstream.close()
        self.idle.clear()

    async def call(self, *args: bytes | str | int) -> Value:
        async with self.control_lock:
            return await self.control.call(*args)


class Backends:
    def __init__(self, config: Config, master: Address, replicas: Iterable[Address]) -> None:
        self.config = config
        self.master = Node(Role.MASTER, master, config)
        self.replicas = [Node(Role.REPLICA, a, config) for a in replicas]
        self.table = CommandTable()
        self.scripts: dict[bytes, bytes] = {}  # sha1 hex → body, loaded on every node
        self._samples: deque[tuple[float, int]] = deque(maxlen=_SAMPLES)
        self._rr = 0
        self.master_changed = asyncio.Event()  # set on every master move (Sentinel)
        self.resolve_requested = asyncio.Event()  # set on -READONLY: ask Sentinel again
        # A replica we know reports itself master while Sentinel has not announced the switch
        # yet: writes wait for the switch rather than land on a master about to be demoted.
        self.promotion_seen = False
        # Old masters keep saying "master" until Sentinel converts them; not a new promotion.
        self._former_masters: set[Address] = set()
        self._stopping = False

    # -- choosing a node ------------------------------------------------------------------

    def ready(self) -> bool:
        return self.master.up

    def pick_reader(
        self, policy: ReadPolicy, min_offset: int | None = None, exclude: Node | None = None
    ) -> Node | None:
        """A node for a replica-eligible read, or None when the policy allows none right now.

        Replicas must pass the lag gate and, for read-your-writes, have replicated past
        ``min_offset``. Among them the one with the fewest outstanding requests wins (ties go
        round robin)."""
        master = self.master if self.master.up and self.master is not exclude else None
        if policy is _MASTER or (policy is _PREFER_MASTER and master is not None):
            return master
        if min_offset is None and exclude is None:
            # The usual read: filtered in C (a comprehension is a Python call of its own).
            candidates = list(filter(_eligible, self.replicas))
        else:
            candidates = [
                r
                for r in self.replicas
                if r.eligible
                and r is not exclude
                and (min_offset is None or r.offset >= min_offset)
            ]
        if not candidates and master is None and not self.master.up:
            candidates = [r for r in self.replicas if r.serves_stale and r is not exclude]
        if policy is _ANY and master is not None:
            candidates.append(master)
        if candidates:
            count = len(candidates)
            if count == 1:
                return candidates[0]
            self._rr += 1
            best = candidates[self._rr % count]
            for i in range(1, count):
                other = candidates[(self._rr + i) % count]
                if other.outstanding < best.outstanding:
                    best = other
            return best
        if policy is _PREFER_REPLICA or policy is _PREFER_MASTER:
            return master
        return None

    def master_offset_after(self, moment: float) -> int | None:
        """The master's replication offset as first seen by a health check that started after
        ``moment``; every write acknowledged before ``moment`` is included in it."""
        for started, offset in self._samples:
            if started > moment:
                return offset
        return None

    # -- health ---------------------------------------------------------------------------

    async def run_health(self) -> None:
        interval = self.config.health_interval
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._check_master()
                await asyncio.gather(*(self._check_replica(r) for r in list(self.replicas)))
                if self.master.up and not len(self.table):
                    await self.load_table()
            except Exception:
                # A bug here must not silently stop health checking for good.
                log.exception("health check failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stopping = True

    async def _info(self, node: Node) -> dict[str, str] | None:
        try:
            reply = await node.call("INFO", "replication", "persistence", "server")
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._mark_down(node, str(exc) or type(exc).__name__)
            return None
        if not isinstance(reply, bytes):
            message = reply.message if isinstance(reply, ReplyError) else repr(reply)
            self._mark_down(node, message)
            return None
        return parse_info(reply)

    def _mark_down(self, node: Node, reason: str) -> None:
        if node.up:
            log.warning(
                "node down",
                extra={"node": str(node.address), "role": node.role, "reason": reason},
            )
        node.up = node.eligible = node.serves_stale = False
        node.drop_idle()
        metrics.UPSTREAM_UP.labels(str(node.address), node.role).set(0)

    async def _check_master(self) -> None:
        node = self.master
        # perf_counter: the clock the sessions stamp write acknowledgements with.
        started = time.perf_counter()
        fields = await self._info(node)
        if fields is None:
            return
        was_up = node.up
        node.up = True
        node.writable = fields.get("role") == "master"
        node.eligible = node.writable
        if not node.writable:
            # A master that was demoted (failover behind our back): ask Sentinel, if any.
            self.resolve_requested.set()
        node.offset = int(fields.get("master_repl_offset", "0") or 0)
        self._samples.append((started, node.offset))
        metrics.UPSTREAM_UP.labels(str(node.address), node.role).set(1)
        if not was_up:
            log.info("master up", extra={"node": str(node.address)})
            await self.load_scripts(node)

    async def _check_replica(self, node: Node) -> None:
        started = time.perf_counter()  # the clock of the master's samples
        fields = await self._info(node)
        if fields is None:
            return
        node.up = True
        offset_field = fields.get("slave_repl_offset") or fields.get("master_repl_offset") or "0"
        node.offset = int(offset_field)
        master_offset = self.master.offset if self.master.up else None
        node.lag_bytes = None if master_offset is None else max(0, master_offset - node.offset)
        node.lag_seconds = self._lag_seconds(node.offset, started)
        reasons = []
        if fields.get("role") != "slave":
            reasons.append("not a replica")
        if fields.get("master_link_status") != "up":
            reasons.append("master_link_status " + fields.get("master_link_status", "?"))
        if fields.get("loading") == "1":
            reasons.append("loading")
        if fields.get("master_sync_in_progress") == "1":
            reasons.append("sync in progress")
        limit_bytes = self.config.max_replica_lag_bytes
        if limit_bytes is not None and node.lag_bytes is not None and node.lag_bytes > limit_bytes:
            reasons.append(f"lag {node.lag_bytes} bytes")
        limit_seconds = self.config.max_replica_lag_seconds
        if limit_seconds is not None and node.lag_seconds > limit_seconds:
            reasons.append(f"lag {node.lag_seconds:.3f}s")
        promoted = fields.get("role") == "master" and node.address not in self._former_masters
        if promoted and self.config.sentinels and not self.promotion_seen:
            log.warning("replica promoted; holding writes", extra={"node": str(node.address)})
            self.promotion_seen = True
            self.resolve_requested.set()
        eligible = not reasons
        run_id = fields.get("run_id", "")
        if run_id != node.run_id:
            node.scripts_synced = node.run_id == ""  # first sight: loaded when it turns eligible
            node.run_id = run_id
        if eligible and node.eligible and not node.scripts_synced:
            await self.load_scripts(node)
        node.serves_stale = fields.get("role") == "slave" and fields.get("loading") != "1"
        if eligible and not node.eligible:
            await self.load_scripts(node)
            log.info("replica in rotation", extra={"node": str(node.address)})
        elif node.eligible and not eligible:
            log.warning(
                "replica out of rotation",
                extra={"node": str(node.address), "reason": ", ".join(reasons)},
            )
        node.eligible = eligible
        metrics.UPSTREAM_UP.labels(str(node.address), node.role).set(int(eligible))
        if node.lag_bytes is not None:
            metrics.REPLICA_LAG_BYTES.labels(str(node.address)).set(node.lag_bytes)
        metrics.REPLICA_LAG_SECONDS.labels(str(node.address)).set(node.lag_seconds)

    def _lag_seconds(self, replica_offset: int, now: float) -> float:
        """How long the master has had data this replica still lacks: the age of the oldest
        master sample beyond the replica's offset (0 when the replica has them all)."""
        for started, offset in self._samples:
            if offset > replica_offset:
                return max(0.0, now - started)
        return 0.0

    async def load_table(self) -> None:
        try:
            reply = await self.master.call("COMMAND")
            table = table_from_command_reply(reply)
        except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("command table not loaded", extra={"reason": str(exc)})
            return
        if len(table):
            self.table = table
            log.info("command table loaded", extra={"commands": len(table)})

    # -- scripts --------------------------------------------------------------------------

    def remember_script(self, frame: bytes) -> None:
        """Record the body of a ``SCRIPT LOAD`` so replicas that join later get it too."""
        try:
            value, _ = decode(frame)
        except (ValueError, IndexError):
            return
        if isinstance(value, list) and len(value) >= 3 and isinstance(value[2], bytes):
            body = value[2]
            self.scripts[hashlib.sha1(body).hexdigest().encode()] = body

    async def broadcast(self, frame: bytes, flush: bool) -> None:
        """Apply SCRIPT LOAD/FLUSH on every replica that answers (the script cache is per node
        and not replicated)."""
        if flush:
            self.scripts.clear()
            args: tuple[bytes, ...] = (b"SCRIPT", b"FLUSH")
        else:
            self.remember_script(frame)
            value, _ = decode(frame)
            if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
                return
            args = tuple(v for v in value if isinstance(v, bytes))
        await asyncio.gather(*(self._call_quietly(r, args) for r in self.replicas if r.up))

    async def load_scripts(self, node: Node) -> None:
        node.scripts_synced = True
        for body in list(self.scripts.values()):
            await self._call_quietly(node, (b"SCRIPT", b"LOAD", body))

    async def _call_quietly(self, node: Node, args: tuple[bytes, ...]) -> None:
        try:
            await node.call(*args)
        except (OSError, TimeoutError, ConnectionError) as exc:
            node.scripts_synced = False  # retried by the next health check that reaches it
            log.warning("script sync failed", extra={"node": str(node.address), "reason": str(exc)})

    # -- topology changes (Sentinel) ------------------------------------------------------

    def set_topology(self, master: Address, replicas: list[Address]) -> None:
        if master != self.master.address:
            log.warning(
                "master moved",
                extra={"old": str(self.master.address), "new": str(master)},
            )
            metrics.FAILOVERS.inc()
            self._former_masters.add(self.master.address)
            self._former_masters.discard(master)
            self.master.move_to(master)
            self.table = CommandTable()
            self._samples.clear()
            self.promotion_seen = False
            self.master_changed.set()
            self.master_changed = asyncio.Event()
        known = {r.address: r for r in self.replicas}
        wanted = [a for a in replicas if a != master]
        if set(wanted) != set(known):
            self.replicas = [known.get(a) or Node(Role.REPLICA, a, self.config) for a in wanted]
            for address, node in known.items():
                if address not in wanted:
                    node.up = node.eligible = False
                    node.generation += 1
                    node.drop_idle()
            log.info("replicas", extra={"replicas": [str(a) for a in wanted]})
