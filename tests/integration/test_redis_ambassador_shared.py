"""Shared upstream connections: clients without connection state share them; the first command
that would give a connection state moves that client to connections of its own, in order."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.fixtures.redis_nodes import (
    AmbassadorProcess,
    RedisNode,
    RedisSet,
    ambassador_args,
    command_calls,
)


def ambassador_connections(master: RedisNode, exclude_ids: set[int]) -> int:
    """Data connections the ambassador holds on the master: every client connection except our
    own observer and the ones that existed before the ambassador's clients spoke."""
    clients = master.client().client_list()
    return sum(
        1 for c in clients if int(c["id"]) not in exclude_ids and c["cmd"] not in ("client|list",)
    )


def connection_ids(master: RedisNode) -> set[int]:
    return {int(c["id"]) for c in master.client().client_list()}


def test_clients_without_state_share_one_connection_per_node(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    before = connection_ids(redis_set.master)  # health checks and the command table
    clients = [amb.client(single_connection_client=True) for _ in range(20)]
    for i, client in enumerate(clients):
        client.set(f"shared:{i}", i)
    assert [c.get(f"shared:{i}") for i, c in enumerate(clients)] == [
        str(i).encode() for i in range(20)
    ]
    assert ambassador_connections(redis_set.master, before) == 1


def test_without_sharing_every_client_has_its_own_connection(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(
        ambassador_args(redis_set, "--read-policy", "master", "--shared-connections", "0")
    )
    before = connection_ids(redis_set.master)
    clients = [amb.client(single_connection_client=True) for _ in range(20)]
    for i, client in enumerate(clients):
        client.set(f"own:{i}", i)
    assert ambassador_connections(redis_set.master, before) == 20


def test_a_transaction_after_shared_writes_runs_after_them(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """SETs on the shared connection, then MULTI (own connection) in the same write: the
    transaction must not overtake the SETs, and the replies keep their order."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    frames = [("SET", "order", "a"), ("INCR", "n"), ("MULTI",), ("SET", "order", "b"), ("EXEC",)]
    frames += [("GET", "order"), ("GET", "n")]
    with socket.create_connection(("127.0.0.1", amb.port), timeout=5) as sock:
        sock.sendall(b"".join(_encode(*f) for f in frames))
        replies = _read_replies(sock, len(frames))
    assert replies == [b"+OK", b":1", b"+OK", b"+QUEUED", b"*1", b"$1", b"$1"]
    assert redis_set.master.client().get("order") == b"b"


def test_client_setname_moves_only_that_client_to_its_own_connection(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    named = amb.client(single_connection_client=True)
    other = amb.client(single_connection_client=True)
    named.set("x", 1)
    other.set("y", 1)
    named.client_setname("named-app")
    assert named.client_getname() == "named-app"
    assert other.client_getname() is None
    assert named.get("x") == b"1"


@contextmanager
def frozen(nodes: list[RedisNode]) -> Iterator[None]:
    pids = [n.process.pid for n in nodes if n.process is not None]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_wait_after_shared_writes_waits_for_those_writes(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """WAIT moves the client to a connection of its own, which carried none of its writes;
    the ambassador makes it wait for them all the same. With the replicas frozen, the writes
    cannot be acknowledged, so WAIT must time out with 0 (a WAIT that forgot them would return
    2 at once)."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    client = amb.client(single_connection_client=True)
    with frozen(redis_set.replicas):
        client.set("unacknowledged", 1)  # on the shared connection
        started = time.monotonic()
        assert client.execute_command("WAIT", 1, 300) == 0
        assert time.monotonic() - started >= 0.25
    assert client.execute_command("WAIT", 2, 5000) == 2
    # The mechanism: one data-less write on the client's own connection before its first WAIT.
    assert command_calls(redis_set.master, "publish") == 1


def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """The first line of each of ``count`` replies (enough to tell them apart here)."""
    buf = b""
    lines: list[bytes] = []
    deadline = time.monotonic() + 5
    expected_lines = 0
    while len(lines) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {lines} arrived")
        while b"\r\n" in buf and len(lines) < count:
            line, buf = buf.split(b"\r\n", 1)
            if expected_lines:
                expected_lines -= 1
                continue
            lines.append(line)
            if line.startswith(b"$") and int(line[1:]) >= 0:
                expected_lines = 1
            elif line.startswith(b"*"):
                # The EXEC reply here is one element (+OK); skip its lines.
                expected_lines = int(line[1:])
        if len(lines) < count:
            buf += sock.recv(65536)
    return lines


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_does_not_read_holds_up_no_one(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """A client pipelines GETs of a 100 KB value and never reads the replies. Clients sharing
    its connection to Redis are still answered promptly, and the ambassador holds at most
    the replies of what that client had in flight when its socket filled up."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    redis_set.master.client().set("big", b"x" * 100_000)
    other = amb.client(single_connection_client=True)
    assert other.get("big") is not None  # the shared connection is open
    before = rss_bytes(amb.process.pid)
    with socket.create_connection(("127.0.0.1", amb.port), timeout=5) as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        stuck.setblocking(False)
        request = _encode("GET", "big") * 100
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and sent < 2000:
            try:
                stuck.send(request)
                sent += 100
            except BlockingIOError:
                time.sleep(0.01)  # the ambassador stopped reading: as it should
        slowest = 0.0
        for _ in range(50):
            started = time.monotonic()
            assert other.set("other", 1) and other.get("other") == b"1"
            slowest = max(slowest, time.monotonic() - started)
        grown = rss_bytes(amb.process.pid) - before
    assert slowest < 1.0
    # 2000 replies of 100 KB would be 200 MB; far less is held.
    assert grown < 60 * 1024 * 1024, f"RSS grew by {grown / 1e6:.0f} MB"
