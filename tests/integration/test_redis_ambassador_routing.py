"""Where commands land: reads on replicas, writes on the master, the issue's special cases,
the lag gate. Observed through each node's own INFO commandstats."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.fixtures.redis_nodes import (
    AmbassadorProcess,
    LaggingSet,
    RedisSet,
    ambassador_args,
    command_calls,
    read_until_quiet,
)

LUA_GET = "return redis.call('GET', KEYS[1])"


def reset_stats(nodes: RedisSet) -> None:
    for node in nodes.all():
        node.client().config_resetstat()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_prefer_replica_sends_reads_to_both_replicas_and_writes_to_the_master(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "prefer-replica"))
    client = amb.client()
    for i in range(200):
        client.set(f"k{i}", i)
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    reset_stats(redis_set)
    values = [client.get(f"k{i}") for i in range(200)]
    assert values == [str(i).encode() for i in range(200)]
    assert command_calls(redis_set.master, "get") == 0
    per_replica = [command_calls(r, "get") for r in redis_set.replicas]
    assert sum(per_replica) == 200
    assert all(calls > 0 for calls in per_replica), per_replica
    client.set("one-more", 1)
    assert command_calls(redis_set.master, "set") == 1
    assert amb.metric("redis_ambassador_commands_total", route="replica") >= 200


def test_master_policy_keeps_reads_on_the_master(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    reset_stats(redis_set)
    client = amb.client()
    for i in range(50):
        client.get(f"k{i}")
    assert command_calls(redis_set.master, "get") == 50
    assert sum(command_calls(r, "get") for r in redis_set.replicas) == 0


def test_special_cases_land_where_the_issue_says(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    client = amb.client()
    client.rpush("nums", 3, 1, 2)
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    reset_stats(redis_set)
    master, replicas = redis_set.master, redis_set.replicas

    def on_replicas(command: str) -> int:
        return sum(command_calls(r, command) for r in replicas)

    assert client.eval(LUA_GET, 1, "x") is None
    assert client.execute_command("EVAL_RO", LUA_GET, 1, "x") is None
    assert (command_calls(master, "eval"), on_replicas("eval_ro")) == (1, 1)
    assert command_calls(master, "eval_ro") == 0
    assert client.sort("nums") == [b"1", b"2", b"3"]
    assert client.execute_command("SORT_RO", "nums") == [b"1", b"2", b"3"]
    assert (command_calls(master, "sort"), on_replicas("sort_ro")) == (1, 1)
    client.publish("ch", "m")
    assert command_calls(master, "publish") == 1  # replicas also count it: it is replicated
    client.execute_command("WAIT", 0, 100)
    assert (command_calls(master, "wait"), on_replicas("wait")) == (1, 0)
    # INFO/ROLE/CONFIG are answered by the master (the replicas would say "slave").
    assert client.execute_command("ROLE")[0] == b"master"
    assert client.info("replication")["role"] == "master"
    assert client.config_get("replicaof") == {"replicaof": ""}
    # SCRIPT LOAD reaches the master and every replica: their caches are separate.
    sha = client.script_load(LUA_GET)
    for node in redis_set.all():
        assert node.client().script_exists(sha) == [True], node.address
    client.set("x", "hello")
    time.sleep(0.3)
    assert client.evalsha_ro(sha, 1, "x") == b"hello"
    client.script_flush()
    for node in redis_set.all():
        assert node.client().script_exists(sha) == [False], node.address


def test_noscript_from_a_replica_is_recovered(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    sha = redis_set.master.client().script_load(LUA_GET)  # behind the ambassador's back
    redis_set.master.client().set("x", "v")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    client = amb.client()
    for _ in range(10):
        assert client.evalsha_ro(sha, 1, "x") == b"v"
    assert amb.metric("redis_ambassador_retries_total", reason="noscript") >= 1


def test_a_replica_that_rejoins_gets_the_loaded_scripts(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set))
    replica = redis_set.replicas[0]
    replica.stop()
    sha = amb.client().script_load(LUA_GET)
    replica.start()  # a restarted redis-server has an empty script cache
    replica.wait_in_sync()
    wait_for(lambda: replica.client().script_exists(sha) == [True])


def test_scan_cursor_stays_on_one_node(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    client = amb.client()
    keys = {f"scan:{i}".encode() for i in range(500)}
    client.mset(dict.fromkeys(keys, 1))
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    reset_stats(redis_set)
    seen = set(client.scan_iter(match="scan:*", count=20))
    assert seen == keys
    calls = [command_calls(node, "scan") for node in redis_set.all()]
    assert sum(calls) > 5
    assert sorted(calls)[-1] == sum(calls), calls  # every page from the same node


def test_replica_with_broken_link_leaves_rotation_and_returns(
    redis_set: RedisSet,
    ambassador_factory: Callable[..., AmbassadorProcess],
    unused_port: Callable[[], int],
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    broken, healthy = redis_set.replicas
    broken.client().replicaof("127.0.0.1", unused_port())
    wait_for(lambda: broken.client().info("replication")["master_link_status"] == "down")
    time.sleep(0.5)
    reset_stats(redis_set)
    client = amb.client()
    for i in range(100):
        client.get(f"k{i}")
    assert command_calls(broken, "get") == 0
    assert command_calls(healthy, "get") == 100
    broken.client().replicaof("127.0.0.1", redis_set.master.port)
    broken.wait_in_sync()
    time.sleep(0.5)
    for i in range(100):
        client.get(f"k{i}")
    assert command_calls(broken, "get") > 0


def test_lag_gate_takes_a_trailing_replica_out(
    lagging_replica_set: LaggingSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    lag = lagging_replica_set
    amb = ambassador_factory(
        [
            "--master", lag.master.address, "--replica", lag.replica.address,
            "--read-policy", "prefer-replica", "--max-replica-lag", "300ms",
        ]
    )  # fmt: skip
    writer = lag.master.client()
    client = amb.client()
    client.get("warm")
    assert command_calls(lag.replica, "get") == 1  # 30 ms behind: inside the gate
    lag.relay.delay = 2.0
    deadline = time.monotonic() + 10
    while amb.metric("redis_ambassador_upstream_up", role="replica") != 0:
        writer.incr("ticker")
        time.sleep(0.02)
        assert time.monotonic() < deadline, "replica was never gated out"
    before = command_calls(lag.replica, "get")
    for _ in range(50):
        client.get("ticker")
        writer.incr("ticker")
    assert command_calls(lag.replica, "get") == before
    assert amb.metric("redis_ambassador_replica_lag_seconds") > 0.3
    lag.relay.delay = 0.0
    wait_for(lambda: amb.metric("redis_ambassador_upstream_up", role="replica") == 1, 15)


def test_wait_goes_to_the_master_connection_that_carried_the_writes(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set))
    client = amb.client(single_connection_client=True)
    client.set("w", 1)
    assert client.execute_command("WAIT", 2, 2000) == 2


def test_select_applies_on_replicas_too(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    redis_set.master.client(db=3).set("in-db3", "three")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    reset_stats(redis_set)
    client = redis.Redis(host="127.0.0.1", port=amb.port, db=3)
    assert client.get("in-db3") == b"three"
    assert client.get("in-db3") == b"three"
    assert sum(command_calls(r, "get") for r in redis_set.replicas) == 2


def test_nodes_with_a_password(
    redis_set_factory: Callable[..., RedisSet],
    ambassador_factory: Callable[..., AmbassadorProcess],
    tmp_path: Path,
) -> None:
    """The ambassador authenticates its own health checks (password from a file); the app
    authenticates itself, and its AUTH is replayed on the replicas it reads from."""
    nodes = redis_set_factory(2, "n0de-secret")
    secret_file = tmp_path / "upstream-password"
    secret_file.write_text("n0de-secret\n")
    amb = ambassador_factory(
        ambassador_args(
            nodes, "--read-policy", "replica", "--upstream-password-file", str(secret_file)
        )
    )
    app = redis.Redis(host="127.0.0.1", port=amb.port, password="n0de-secret")
    app.set("k", "v")
    nodes.master.client().execute_command("WAIT", 2, 2000)
    reset_stats(nodes)
    assert [app.get("k") for _ in range(10)] == [b"v"] * 10
    assert sum(command_calls(r, "get") for r in nodes.replicas) == 10
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=amb.port).get("k")
    assert "n0de-secret" not in amb.log()


def test_one_pipeline_split_across_nodes_replies_in_request_order(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """Reads (replicas) and writes (master) interleaved in one client write: the batched
    forwarding sends each node its share at once, and the replies still come back in the
    order the commands were sent."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "prefer-replica"))
    client = amb.client()
    for i in range(100):
        client.set(f"r{i}", f"v{i}")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    reset_stats(redis_set)
    pipe = client.pipeline(transaction=False)
    for i in range(100):
        pipe.get(f"r{i}")
        pipe.set(f"w{i}", i)
        pipe.incr("counter")
    replies = pipe.execute()
    expected: list[object] = []
    for i in range(100):
        expected += [f"v{i}".encode(), True, i + 1]
    assert replies == expected
    assert command_calls(redis_set.master, "get") == 0
    assert sum(command_calls(r, "get") for r in redis_set.replicas) == 100
    assert command_calls(redis_set.master, "set") == 100


def test_select_inside_multi_applies_on_replicas_once_exec_runs_it(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    redis_set.master.client(db=4).set("where", "four")
    redis_set.master.client(db=0).set("where", "zero")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    client = amb.client(single_connection_client=True)
    assert client.get("where") == b"zero"  # a replica connection exists before the change
    # On this client's connection (a redis-py pipeline would take another one from the pool).
    client.execute_command("MULTI")
    client.execute_command("SELECT", 4)
    assert client.execute_command("EXEC") == [b"OK"]
    reset_stats(redis_set)
    assert client.get("where") == b"four"
    assert client.get("where") == b"four"
    assert sum(command_calls(r, "get") for r in redis_set.replicas) == 2
    # A transaction that does not run changes nothing.
    client.execute_command("MULTI")
    client.execute_command("SELECT", 0)
    client.execute_command("DISCARD")
    assert client.get("where") == b"four"


def test_select_after_watch_applies_on_replicas(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    redis_set.master.client(db=6).set("where", "six")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    client = amb.client(single_connection_client=True)
    assert client.get("where") is None
    client.execute_command("WATCH", "where")
    client.execute_command("SELECT", 6)
    client.execute_command("UNWATCH")
    assert client.get("where") == b"six"


def test_every_command_is_counted_once_in_the_metrics(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """Commands by route and result: one sample per command, whether a node answered it or
    the ambassador did (library labels answered locally, a read refused for want of a
    replica)."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    for replica in redis_set.replicas:
        replica.stop()
    wait_for(lambda: amb.metric("redis_ambassador_upstream_up", role="replica") == 0)
    with socket.create_connection(("127.0.0.1", amb.port), timeout=5) as sock:
        sock.sendall(
            b"CLIENT SETINFO LIB-NAME probe\r\nCLIENT SETINFO LIB-VER 1.0\r\n"
            b"PING\r\nPING\r\nSET k v\r\nGET k\r\n"
        )
        replies = read_until_quiet(sock)
    assert replies.startswith(b"+OK\r\n+OK\r\n+PONG\r\n+PONG\r\n+OK\r\n-ERR ambassador: no healthy")
    total = amb.metric("redis_ambassador_commands_total")
    assert amb.metric("redis_ambassador_commands_total", route="local") == 2
    assert amb.metric("redis_ambassador_commands_total", route="master") == 3
    assert amb.metric("redis_ambassador_commands_total", route="error", result="error") == 1
    assert total == 6


def test_one_command_per_write_is_counted_with_its_latency(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """The path of one command per client write collects latencies and folds them into the
    histogram in batches (metrics.FOLD_AT): every command is counted once, folded or not."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    client = amb.client()
    client.ping()  # the connection's own set-up commands, before the counting starts

    def figures() -> tuple[float, float, float]:
        return (
            amb.metric("redis_ambassador_commands_total", route="master", result="ok"),
            amb.metric("redis_ambassador_command_duration_seconds_count", route="master"),
            amb.metric(
                "redis_ambassador_command_duration_seconds_bucket", route="master", le="+Inf"
            ),
        )

    before = figures()
    commands = 1500  # a batch folded on the hot path, the rest at the scrape
    for i in range(commands // 2):
        client.set(f"p1:{i}", i)
        assert client.get(f"p1:{i}") == str(i).encode()
    after = figures()
    assert [a - b for a, b in zip(after, before, strict=True)] == [commands] * 3
    assert amb.metric("redis_ambassador_command_duration_seconds_sum", route="master") > 0
