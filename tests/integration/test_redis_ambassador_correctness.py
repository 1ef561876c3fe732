# ruff: noqa: E501 -- the command scripts are tables; a row per line reads better than wrapping
"""The same command scripts, run directly against the Redis master and through the ambassador
(master + 2 replicas, prefer-replica, read-your-writes): every reply must be identical.

Each script starts from an empty dataset. Replies are compared as redis-py decodes them, with
errors compared by message."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fixtures.redis_nodes import (
    AmbassadorProcess,
    RedisSet,
    ambassador_args,
    read_until_quiet,
    start_ambassador,
    start_redis_set,
)

Step = tuple[object, ...]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisSet, AmbassadorProcess]]:
    base: Path = tmp_path_factory.mktemp("correctness")
    nodes = start_redis_set(base / "redis", replicas=2)
    amb = None
    try:
        amb = start_ambassador(
            ambassador_args(nodes, "--read-policy", "prefer-replica", "--read-your-writes"),
            base / "ambassador",
        )
        yield nodes, amb
    finally:
        if amb is not None:
            amb.stop()
        for node in reversed(nodes.all()):
            node.stop()


def _reply(conn: redis.Connection) -> object:
    try:
        return conn.read_response()
    except redis.ResponseError as exc:
        return ("error", str(exc))


def run_script(port: int, script: list[Step], protocol: int = 2) -> list[object]:
    conns: dict[int, redis.Connection] = {}

    def conn(i: int) -> redis.Connection:
        if i not in conns:
            c = redis.Connection(host="127.0.0.1", port=port, socket_timeout=10, protocol=protocol)
            c.connect()
            conns[i] = c
        return conns[i]

    out: list[object] = []
    try:
        for step in script:
            i, verb, *args = step
            assert isinstance(i, int)
            if verb == "!send":
                conn(i).send_command(*args)
            elif verb == "!recv":
                out.append(_reply(conn(i)))
            elif verb == "!sleep":
                time.sleep(float(args[0]))  # type: ignore[arg-type]
            elif verb == "!pipeline":
                commands = args[0]
                conn(i).send_packed_command(conn(i).pack_commands(commands))  # type: ignore[arg-type]
                out.append([_reply(conn(i)) for _ in commands])  # type: ignore[arg-type]
            else:
                conn(i).send_command(verb, *args)
                out.append(_reply(conn(i)))
    finally:
        for c in conns.values():
            c.disconnect()
    return out


def reset(nodes: RedisSet) -> None:
    master = nodes.master.client()
    master.flushall()
    master.script_flush()
    for replica in nodes.replicas:
        replica.client().script_flush()
    master.execute_command("WAIT", len(nodes.replicas), 2000)


LUA_GET = "return redis.call('GET', KEYS[1])"
LUA_INCR = "return redis.call('INCR', KEYS[1])"
SHA = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"  # sha1 of LUA_GET, as SCRIPT LOAD returns it

SCRIPTS: dict[str, list[Step]] = {
    "strings": [
        (0, "SET", "s", "hello"), (0, "GET", "s"), (0, "APPEND", "s", " world"),
        (0, "GETRANGE", "s", 0, 4), (0, "STRLEN", "s"), (0, "INCR", "n"), (0, "INCRBY", "n", 41),
        (0, "GET", "n"), (0, "MSET", "a", 1, "b", 2), (0, "MGET", "a", "b", "missing"),
        (0, "SET", "a", 9, "NX"), (0, "SET", "a", 9, "XX", "GET"), (0, "GETDEL", "a"),
        (0, "EXISTS", "a", "b"), (0, "TYPE", "s"), (0, "INCR", "s"),
    ],
    "hashes": [
        (0, "HSET", "h", "f1", "v1", "f2", "v2"), (0, "HGET", "h", "f1"), (0, "HGETALL", "h"),
        (0, "HINCRBY", "h", "c", 5), (0, "HMGET", "h", "f1", "nope", "c"), (0, "HLEN", "h"),
        (0, "HDEL", "h", "f2"), (0, "HEXISTS", "h", "f2"), (0, "HKEYS", "h"), (0, "HVALS", "h"),
    ],
    "lists": [
        (0, "RPUSH", "l", "a", "b", "c"), (0, "LPUSH", "l", "z"), (0, "LRANGE", "l", 0, -1),
        (0, "LPOP", "l"), (0, "LLEN", "l"), (0, "LINDEX", "l", 1),
        (0, "LMOVE", "l", "l2", "LEFT", "RIGHT"), (0, "LRANGE", "l2", 0, -1), (0, "LPOS", "l", "c"),
    ],
    "sets": [
        (0, "SADD", "set", 3, 1, 2), (0, "SISMEMBER", "set", 2), (0, "SCARD", "set"),
        (0, "SMEMBERS", "set"), (0, "SMISMEMBER", "set", 1, 7), (0, "SREM", "set", 1),
        (0, "SADD", "other", 2, 9), (0, "SINTER", "set", "other"), (0, "SINTERCARD", 2, "set", "other"),
    ],
    "zsets": [
        (0, "ZADD", "z", 1, "a", 2, "b", 3, "c"), (0, "ZRANGE", "z", 0, -1, "WITHSCORES"),
        (0, "ZSCORE", "z", "b"), (0, "ZINCRBY", "z", 5, "a"), (0, "ZRANK", "z", "a"),
        (0, "ZRANGEBYSCORE", "z", 2, "+inf"), (0, "ZREVRANGE", "z", 0, 1), (0, "ZCARD", "z"),
        (0, "ZPOPMIN", "z"),
    ],
    "streams": [
        (0, "XADD", "st", "1-1", "f", "v1"), (0, "XADD", "st", "2-1", "f", "v2"),
        (0, "XLEN", "st"), (0, "XRANGE", "st", "-", "+"), (0, "XREAD", "COUNT", 1, "STREAMS", "st", 0),
        (0, "XGROUP", "CREATE", "st", "g", 0), (0, "XREADGROUP", "GROUP", "g", "c1", "STREAMS", "st", ">"),
        (0, "XACK", "st", "g", "1-1"), (0, "XPENDING", "st", "g"), (0, "XDEL", "st", "2-1"),
    ],
    "sort": [
        (0, "RPUSH", "nums", 3, 1, 2), (0, "SORT", "nums"), (0, "SORT_RO", "nums", "DESC"),
        (0, "SORT", "nums", "STORE", "sorted"), (0, "LRANGE", "sorted", 0, -1),
    ],
    "multi-exec": [
        (0, "MULTI"), (0, "SET", "t", 1), (0, "INCR", "t"), (0, "GET", "t"), (0, "EXEC"),
        (0, "MULTI"), (0, "SET", "t", 100), (0, "DISCARD"), (0, "GET", "t"),
        (0, "MULTI"), (0, "NOSUCHCMD"), (0, "EXEC"),
    ],
    "watch": [
        (0, "SET", "w", 1), (0, "WATCH", "w"), (1, "SET", "w", 2), (0, "MULTI"),
        (0, "SET", "w", 3), (0, "EXEC"), (0, "GET", "w"),
        (0, "WATCH", "w"), (0, "MULTI"), (0, "SET", "w", 4), (0, "EXEC"), (0, "GET", "w"),
    ],
    "pubsub": [
        (0, "SUBSCRIBE", "news"), (1, "PUBLISH", "news", "hello"), (0, "!recv"),
        (1, "PUBLISH", "news", "again"), (0, "!recv"), (0, "UNSUBSCRIBE", "news"),
        (2, "PSUBSCRIBE", "n*"), (1, "PUBLISH", "nx", "pattern"), (2, "!recv"),
    ],
    "blocking": [
        (0, "BLPOP", "empty", 0.1),
        (0, "!send", "BLPOP", "q", 5), (0, "!sleep", 0.2), (1, "RPUSH", "q", "x"), (0, "!recv"),
        (0, "!send", "XREAD", "BLOCK", 5000, "STREAMS", "bs", "$"), (0, "!sleep", 0.2),
        (1, "XADD", "bs", "7-1", "f", "v"), (0, "!recv"),
        (0, "!send", "BZPOPMIN", "bz", 5), (0, "!sleep", 0.2), (1, "ZADD", "bz", 1, "m"), (0, "!recv"),
    ],
    "scripts": [
        (0, "SET", "k", "v"), (0, "EVAL", LUA_GET, 1, "k"), (0, "EVAL_RO", LUA_GET, 1, "k"),
        (0, "EVAL_RO", LUA_INCR, 1, "k"), (0, "EVAL", LUA_INCR, 1, "n"),
        (0, "SCRIPT", "LOAD", LUA_GET), (0, "EVALSHA", SHA, 1, "k"),
        (0, "EVALSHA_RO", SHA, 1, "k"),
        (0, "SCRIPT", "EXISTS", SHA),
        (0, "SCRIPT", "FLUSH"), (0, "EVALSHA_RO", SHA, 1, "k"),
    ],
    "select": [
        (0, "SET", "db", "zero"), (0, "SELECT", 1), (0, "GET", "db"), (0, "SET", "db", "one"),
        (0, "GET", "db"), (0, "SELECT", 0), (0, "GET", "db"), (1, "GET", "db"),
        (0, "SELECT", 99),
    ],
    "client-name": [
        (0, "CLIENT", "SETNAME", "app-1"), (0, "CLIENT", "GETNAME"), (0, "PING"), (0, "ECHO", "hi"),
    ],
    "pipeline": [
        (0, "!pipeline", [("SET", f"p{i}", i) if i % 3 else ("GET", f"p{i - 1}") for i in range(60)]),
        (0, "!pipeline", [("INCR", "pc"), ("GET", "pc"), ("LPUSH", "pl", "a"), ("LRANGE", "pl", 0, -1),
                          ("HSET", "ph", "f", 1), ("HGETALL", "ph"), ("EVAL_RO", LUA_GET, 1, "pc")]),
    ],
    "errors": [
        (0, "GET"), (0, "SET", "x"), (0, "LPUSH", "s1", "a"), (0, "GET", "s1"), (0, "NOSUCH", "a"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_same_replies_directly_and_through_the_ambassador(
    stack: tuple[RedisSet, AmbassadorProcess], name: str
) -> None:
    nodes, amb = stack
    reset(nodes)
    direct = run_script(nodes.master.port, SCRIPTS[name])
    reset(nodes)
    proxied = run_script(amb.port, SCRIPTS[name])
    assert proxied == direct
    assert len(direct) >= 2  # the script really ran


HELLO3_SCRIPT: list[Step] = [
    (0, "HSET", "h", "a", 1, "b", 2), (0, "HGETALL", "h"), (0, "ZADD", "z", 1.5, "m"),
    (0, "ZSCORE", "z", "m"), (0, "SADD", "s", 1), (0, "SMEMBERS", "s"), (0, "GET", "missing"),
    (0, "CONFIG", "GET", "maxmemory-policy"), (0, "EVAL_RO", "return {1, 'x'}", 0),
]  # fmt: skip


def test_resp3_hello_3_replies_match(stack: tuple[RedisSet, AmbassadorProcess]) -> None:
    nodes, amb = stack
    reset(nodes)
    direct = run_script(nodes.master.port, HELLO3_SCRIPT, protocol=3)
    reset(nodes)
    proxied = run_script(amb.port, HELLO3_SCRIPT, protocol=3)
    assert proxied == direct
    assert direct[1] == {b"a": b"1", b"b": b"2"}  # a RESP3 map, not a flat list


def _resp3_pubsub_bytes(port: int, publisher: redis.Redis) -> bytes:
    """Raw bytes a RESP3 subscriber receives (redis-py consumes push frames itself)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HELLO 3\r\n")
        time.sleep(0.2)
        sock.recv(65536)  # the HELLO map (contains the connection id, which differs)
        sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nr3\r\n")
        time.sleep(0.2)
        publisher.publish("r3", "pushed")
        time.sleep(0.2)
        return read_until_quiet(sock)


def test_resp3_push_messages_pass_through(stack: tuple[RedisSet, AmbassadorProcess]) -> None:
    nodes, amb = stack
    direct = _resp3_pubsub_bytes(nodes.master.port, nodes.master.client())
    proxied = _resp3_pubsub_bytes(amb.port, amb.client())
    assert proxied == direct
    assert direct.startswith(b">3\r\n$9\r\nsubscribe") and b"pushed" in direct


def test_monitor_streams_commands_through_the_ambassador(
    stack: tuple[RedisSet, AmbassadorProcess],
) -> None:
    _, amb = stack
    watcher = redis.Connection(host="127.0.0.1", port=amb.port, socket_timeout=5)
    watcher.connect()
    try:
        watcher.send_command("MONITOR")
        assert watcher.read_response() in (b"OK", "OK")
        amb.client().set("monitored-key", "v")
        deadline = time.monotonic() + 5
        seen = b""
        while b"monitored-key" not in seen and time.monotonic() < deadline:
            line = watcher.read_response()
            seen += line if isinstance(line, bytes) else str(line).encode()
        assert b"monitored-key" in seen
    finally:
        watcher.disconnect()


def test_large_values_pass_through_intact(stack: tuple[RedisSet, AmbassadorProcess]) -> None:
    nodes, amb = stack
    reset(nodes)
    client = amb.client()
    value = bytes(range(256)) * 40_000  # ~10 MB, every byte value
    assert client.set("big", value)
    assert client.get("big") == value
    assert client.strlen("big") == len(value)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _start_peak_rss_count(pid: int) -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS and return that (KiB): the
    growth measured afterwards belongs to what follows, not to earlier tests' (or a fresh
    process's) history."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_kib(pid, "VmRSS")


def _peak_rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmHWM")


def test_a_large_reply_is_streamed_not_held_whole(
    stack: tuple[RedisSet, AmbassadorProcess],
) -> None:
    """A 64 MiB value read through the ambassador: its peak memory grows by far less than
    the value (the reply is passed on as it arrives)."""
    nodes, amb = stack
    reset(nodes)
    value = b"v" * (64 * 1024 * 1024)
    nodes.master.client().set("huge", value)
    nodes.master.client().execute_command("WAIT", 2, 5000)
    client = amb.client()
    assert client.get("warm-up") is None
    before = _start_peak_rss_count(amb.process.pid)
    assert client.get("huge") == value
    growth_mib = (_peak_rss_kib(amb.process.pid) - before) / 1024
    assert growth_mib < 8, f"peak RSS grew by {growth_mib:.1f} MiB for a 64 MiB reply"
    nodes.master.client().delete("huge")


def test_a_large_request_is_streamed_not_held_whole(
    stack: tuple[RedisSet, AmbassadorProcess],
) -> None:
    """A 64 MiB SET through the ambassador (with commands before and after it in the same
    pipeline) arrives intact, and the ambassador's peak memory grows far less than the value."""
    nodes, amb = stack
    reset(nodes)
    value = bytes(range(256)) * (256 * 1024)  # 64 MiB
    client = amb.client()
    assert client.get("warm-up") is None
    before = _start_peak_rss_count(amb.process.pid)
    pipe = client.pipeline(transaction=False)
    pipe.set("before", 1).set("huge-in", value).incr("before").strlen("huge-in")
    assert pipe.execute() == [True, True, 2, len(value)]
    growth_mib = (_peak_rss_kib(amb.process.pid) - before) / 1024
    assert nodes.master.client().get("huge-in") == value
    # ~2 MiB measured; 16-31 MiB when a request was buffered while its connection was made.
    assert growth_mib < 8, f"peak RSS grew by {growth_mib:.1f} MiB for a 64 MiB request"
    nodes.master.client().delete("huge-in")


def _tracking_push(port: int, writer: redis.Redis) -> bytes:
    """What a RESP3 client with CLIENT TRACKING receives, unasked, when another client
    changes a key it read."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HELLO 3\r\nCLIENT TRACKING ON\r\nGET tracked\r\n")
        time.sleep(0.3)
        sock.recv(65536)  # HELLO map, +OK, the value
        writer.set("tracked", "changed")
        sock.settimeout(3)
        received = b""
        deadline = time.monotonic() + 3
        while b"invalidate" not in received and time.monotonic() < deadline:
            received += sock.recv(65536)
        return received


def test_client_tracking_invalidations_arrive_while_idle(
    stack: tuple[RedisSet, AmbassadorProcess],
) -> None:
    nodes, amb = stack
    reset(nodes)
    writer = nodes.master.client()
    writer.set("tracked", "v")
    writer.execute_command("WAIT", 2, 2000)
    direct = _tracking_push(nodes.master.port, writer)
    writer.set("tracked", "v")
    writer.execute_command("WAIT", 2, 2000)
    proxied = _tracking_push(amb.port, writer)
    assert direct.startswith(b">2\r\n$10\r\ninvalidate\r\n")
    assert proxied == direct


def _raw_exchange(port: int, payload: bytes, expect_replies: int) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        deadline = time.monotonic() + 5
        while received.count(b"\r\n") < expect_replies and time.monotonic() < deadline:
            received += sock.recv(65536)
        return received


def _same_raw_exchange(
    nodes: RedisSet, amb: AmbassadorProcess, payload: bytes, expect_replies: int
) -> bytes:
    """What Redis answers to ``payload``, which the ambassador must answer alike, byte for
    byte (each from an empty dataset)."""
    reset(nodes)
    direct = _raw_exchange(nodes.master.port, payload, expect_replies)
    reset(nodes)
    assert _raw_exchange(amb.port, payload, expect_replies) == direct
    return direct


def test_inline_commands_pipelined_with_multibulk(
    stack: tuple[RedisSet, AmbassadorProcess],
) -> None:
    """Inline commands (what telnet-style clients and health probes send), mixed with RESP
    in one pipeline, blank lines ignored, RESET and QUIT last."""
    nodes, amb = stack
    payload = (
        b"PING\r\nSET inline 1\r\n\r\n*2\r\n$4\r\nINCR\r\n$6\r\ninline\r\nGET inline\n"
        b"ECHO hello\r\nRESET\r\nQUIT\r\n"
    )
    direct = _same_raw_exchange(nodes, amb, payload, 9)
    assert direct == b"+PONG\r\n+OK\r\n:2\r\n$1\r\n2\r\n$5\r\nhello\r\n+RESET\r\n+OK\r\n"


def test_quoted_inline_commands(stack: tuple[RedisSet, AmbassadorProcess]) -> None:
    """Quoted inline arguments (Redis's sdssplitargs rules) route and run as they do on Redis;
    unbalanced quotes end the connection with Redis's error."""
    nodes, amb = stack
    payload = (
        b'SET "key one" "hello world"\r\nGET "key one"\r\nSET k\'ey\' \'it\\\'s\'\r\n'
        b'GET key\r\nECHO "\\x41\\tB"\r\nSTRLEN "key one"\r\nSET "unbalanced\r\nPING\r\n'
    )
    direct = _same_raw_exchange(nodes, amb, payload, 7)
    assert direct == (
        b"+OK\r\n$11\r\nhello world\r\n+OK\r\n$4\r\nit's\r\n$3\r\nA\tB\r\n:11\r\n"
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    )
