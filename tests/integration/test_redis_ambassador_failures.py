"""Failures a user would notice: a replica dying under load, the master going away and coming
back, stale reads with a lagging replica, malformed clients, limits, SIGTERM, bad flags."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.redis_nodes import (
    REPO_ROOT,
    AmbassadorProcess,
    LaggingSet,
    RedisSet,
    ambassador_args,
    command_calls,
    read_until_quiet,
    start_ambassador,
    start_redis_set,
)


@dataclass
class LoadResult:
    ops: int = 0
    errors: list[str] = field(default_factory=list)


def run_load(
    port: int, seconds: float, workers: int, during: Callable[[], None], max_ops: int = 200_000
) -> LoadResult:
    """``workers`` clients doing SET+GET pairs for ``seconds`` (and at most ``max_ops``);
    ``during`` runs in the middle. Every error any client sees is recorded."""
    result = LoadResult()
    stop = threading.Event()
    lock = threading.Lock()

    def work(n: int) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        i = 0
        while not stop.is_set() and result.ops < max_ops:
            key = f"load:{n}:{i % 100}"
            try:
                client.set(key, i)
                client.get(key)
            except redis.RedisError as exc:
                with lock:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
            with lock:
                result.ops += 2
            i += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 3)
    during()
    time.sleep(seconds * 2 / 3)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return result


def test_killing_a_replica_under_load_causes_no_client_errors(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "prefer-replica"))
    victim, survivor = redis_set.replicas

    def kill() -> None:
        assert victim.process is not None
        victim.process.kill()  # SIGKILL: no goodbye, connections reset
        victim.process.wait()
        for node in redis_set.all():
            if node is not victim:
                node.client().config_resetstat()

    result = run_load(amb.port, seconds=3.0, workers=4, during=kill)
    assert result.errors == []
    assert result.ops > 500
    assert command_calls(survivor, "get") > 0  # reads moved to the other replica


def test_master_down_without_sentinel(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    replica_first = ambassador_factory(
        ambassador_args(redis_set, "--read-policy", "prefer-replica")
    )
    master_only = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    replica_first.client().set("kept", "yes")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    redis_set.master.stop()
    deadline = time.monotonic() + 10
    while replica_first.http("/ready")[0] != 503 or master_only.http("/ready")[0] != 503:
        assert time.monotonic() < deadline, "never noticed the master was down"
        time.sleep(0.05)

    with pytest.raises(redis.ResponseError, match=r"master .* unavailable"):
        replica_first.client().set("new", 1)
    assert replica_first.client().get("kept") == b"yes"  # reads per policy: replicas serve
    with pytest.raises(redis.ResponseError, match="unavailable"):
        master_only.client().get("kept")

    redis_set.master.start()  # same port; no persistence, so the dataset starts empty
    for replica in redis_set.replicas:
        replica.wait_in_sync(timeout=20)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert replica_first.client().set("new", 2)
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline, "writes did not recover"
            time.sleep(0.1)
    assert master_only.client().get("new") == b"2"
    assert replica_first.http("/ready")[0] == 200


def set_get_pairs(port: int, pairs: int, key: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    stale = 0
    for i in range(pairs):
        value = str(i).encode()
        client.set(key, value)
        if client.get(key) != value:
            stale += 1
    return stale


def test_read_your_writes_gives_zero_stale_reads_with_a_lagging_replica(
    lagging_replica_set: LaggingSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    lag = lagging_replica_set
    base = ["--master", lag.master.address, "--replica", lag.replica.address]
    without = ambassador_factory([*base, "--read-policy", "prefer-replica"])
    with_ryw = ambassador_factory([*base, "--read-policy", "prefer-replica", "--read-your-writes"])

    # Control: the replica really lags, so without read-your-writes a client sees stale data.
    assert set_get_pairs(without.port, 2_000, "control") > 0

    lag.replica.client().config_resetstat()
    reader_done = threading.Event()
    reads_elsewhere = LoadResult()

    def other_reader() -> None:
        # A client that never writes keeps reading from the replica meanwhile: the replica
        # stays in rotation, so zero stale reads is not just "everything went to the master".
        client = with_ryw.client()
        while not reader_done.is_set() and reads_elsewhere.ops < 200_000:
            client.get("control")
            reads_elsewhere.ops += 1
            time.sleep(0.005)

    thread = threading.Thread(target=other_reader)
    thread.start()
    try:
        stale = set_get_pairs(with_ryw.port, 20_000, "ryw")
    finally:
        reader_done.set()
        thread.join(timeout=30)
    assert stale == 0
    assert command_calls(lag.replica, "get") > 0


def test_malformed_input_closes_only_that_client(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--read-your-writes"))
    good = amb.client(single_connection_client=True)
    good.set("still", "here")
    for garbage in (
        b"*1\r\n+PING\r\n",
        b"*2\r\n$3\r\nGET\r\n$-7\r\n",
        b"*99999999999\r\n",
        # An inline line with a NUL: Redis would take the commands after it, from every client
        # sharing the connection, as part of the line (see split_inline).
        b"SET a\x00b c\r\n",
    ):
        with socket.create_connection(("127.0.0.1", amb.port), timeout=5) as bad:
            bad.sendall(b"PING\r\n" + garbage + b"PING\r\n")
            received = b""
            while chunk := bad.recv(4096):
                received += chunk
        assert received.startswith(b"+PONG\r\n-ERR Protocol error")
        assert received.count(b"PONG") == 1  # nothing after the error: the client is closed
    assert good.get("still") == b"here"
    assert amb.process.poll() is None


def test_max_clients_limit(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--max-clients", "2"))
    first = amb.client(single_connection_client=True)
    second = amb.client(single_connection_client=True)
    assert first.ping() and second.ping()
    with pytest.raises(redis.RedisError, match="max number of clients"):
        amb.client(single_connection_client=True).ping()
    first.close()
    time.sleep(0.2)
    assert amb.client(single_connection_client=True).ping()


def test_sigterm_delivers_in_flight_replies_then_exits_zero(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set))
    client = amb.client(single_connection_client=True)
    client.ping()
    replies: list[object] = []
    blocked = threading.Thread(target=lambda: replies.append(client.blpop(["nothing"], 1)))
    blocked.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert amb.stop() == 0
    blocked.join(timeout=10)
    assert replies == [None]  # the BLPOP timed out normally: its reply was delivered
    assert time.monotonic() - started < 5
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", amb.port), timeout=1)


def test_app_password_never_reaches_the_log(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "-vv"))
    secret = "hunter2-do-not-log"
    redis_set.master.client().config_resetstat()
    conn = redis.Connection(host="127.0.0.1", port=amb.port, socket_timeout=5)
    conn.connect()
    conn.send_command("AUTH", secret)
    with pytest.raises(redis.RedisError):  # no password is configured on the nodes
        conn.read_response()
    conn.disconnect()
    assert command_calls(redis_set.master, "auth") == 1  # it was passed through
    redis.Redis(host="127.0.0.1", port=amb.port).execute_command("CLIENT", "SETNAME", "x")
    amb.stop()
    assert amb.log()
    assert secret not in amb.log()


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ambassadors.redis_split", *argv],
        capture_output=True, text=True, timeout=30, cwd=REPO_ROOT, check=False,
    )  # fmt: skip


def test_unknown_flag_exits_2() -> None:
    assert run_cli("--master", "127.0.0.1:1", "--no-such-flag").returncode == 2


def test_config_error_exits_1_with_one_line() -> None:
    done = run_cli("--master", "127.0.0.1:1", "--read-policy", "closest")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "--read-policy" in done.stderr


def test_a_hung_replica_is_abandoned_after_the_upstream_timeout(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """SIGSTOP a replica: its TCP stays open but nothing answers. Reads sent to it are re-sent
    elsewhere after --upstream-timeout; the client sees slow replies, not errors."""
    amb = ambassador_factory(
        ambassador_args(redis_set, "--read-policy", "prefer-replica", "--upstream-timeout", "300ms")
    )
    client = amb.client()
    client.set("k", "v")
    redis_set.master.client().execute_command("WAIT", 2, 2000)
    frozen = redis_set.replicas[0]
    assert frozen.process is not None

    def answered() -> float:
        return sum(
            amb.metric("redis_ambassador_commands_total", route=route)
            for route in ("master", "replica")
        )

    answered_before = answered()
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert [client.get("k") for _ in range(20)] == [b"v"] * 20
        assert time.monotonic() - started < 5
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    assert amb.metric("redis_ambassador_retries_total", reason="upstream_lost") >= 1
    # Each read counted under the node that answered it, those re-sent elsewhere included.
    assert answered() - answered_before == 20


def test_idle_clients_are_closed(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set, "--client-idle-timeout", "500ms"))
    with socket.create_connection(("127.0.0.1", amb.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
        started = time.monotonic()
        assert sock.recv(64) == b""  # closed by the ambassador
        assert 0.3 < time.monotonic() - started < 3


def test_killing_a_replica_under_pipelined_reads_keeps_replies_in_order(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    """Pipelines of reads in flight on the replica that dies are re-sent elsewhere; every
    pipeline still gets the right reply in the right slot."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "replica"))
    seed = redis_set.master.client()
    seed.mset({f"p:{i}": i for i in range(50)})
    seed.execute_command("WAIT", 2, 2000)
    victim = redis_set.replicas[0]
    errors: list[str] = []
    wrong = 0
    pipelines = 0
    stop = threading.Event()

    def work() -> None:
        nonlocal wrong, pipelines
        client = amb.client()
        while not stop.is_set() and pipelines < 50_000:
            pipe = client.pipeline(transaction=False)
            for i in range(50):
                pipe.get(f"p:{i}")
            try:
                replies = pipe.execute()
            except redis.RedisError as exc:
                errors.append(str(exc))
                continue
            pipelines += 1
            wrong += sum(1 for i, r in enumerate(replies) if r != str(i).encode())

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    assert victim.process is not None
    victim.process.kill()
    victim.process.wait()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert wrong == 0
    assert pipelines > 20
    # Reads were in flight on the killed replica and were re-sent, not just routed around.
    assert amb.metric("redis_ambassador_retries_total", reason="upstream_lost") >= 1


def _exchange(port: int, request: bytes) -> bytes:
    """Everything answered to ``request`` until the server closes or goes quiet for 0.5 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(request)
        return read_until_quiet(sock)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"*2\r\n$3\r\nGET\r\n:1\r\n",  # an integer where a bulk string must be
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",  # a nil bulk string
        b"*1\r\n*1\r\n$4\r\nPING\r\n",  # a nested array
        b"*0\r\n*1\r\n$4\r\nPING\r\n",  # an empty array: Redis skips it silently
        b"*-1\r\n*1\r\n$4\r\nPING\r\n",  # a nil array: skipped too
        b"*1\r\n$4\r\nPING\r\n:0\r\n",  # a RESP integer 0 last: an inline command to Redis
    ],
    ids=["integer-argument", "nil-argument", "nested-array", "empty-array", "nil-array", "zero"],
)
def test_pipelines_redis_would_refuse_get_redis_s_answer(
    request_bytes: bytes,
    redis_set: RedisSet,
    ambassador_factory: Callable[..., AmbassadorProcess],
) -> None:
    """Complete multibulk pipelines take the hiredis fast path, whose parser accepts more than
    Redis does; what Redis refuses must still be refused, byte for byte as Redis says it."""
    amb = ambassador_factory(ambassador_args(redis_set, "--read-policy", "master"))
    # The fast path takes names it has routed before: PING is one of them from here on.
    assert _exchange(amb.port, b"*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n"
    request = b"*1\r\n$4\r\nPING\r\n" + request_bytes
    direct = _exchange(redis_set.master.port, request)
    assert direct.startswith(b"+PONG\r\n")
    assert _exchange(amb.port, request) == direct


_FRAMES = [
    b"*1\r\n$4\r\nPING\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n",
    b"*2\r\n$3\r\nget\r\n$1\r\nn\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b":0\r\n",
    b"\r\n",
    b"PING\r\n",
    b"*2\r\n$3\r\nGET\r\n:1\r\n",
    b"*2\r\n$3\r\nGET\r\n$-1\r\n",
    b"*1\r\n*1\r\n$4\r\nPING\r\n",
]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=st.lists(st.sampled_from(_FRAMES), min_size=1, max_size=12))
def test_any_mix_of_frames_gets_what_redis_answers(
    frames: list[bytes], refused_stack: tuple[RedisSet, AmbassadorProcess]
) -> None:
    """Pipelines mixing what the fast path takes with what it must leave to the general path
    (and what Redis refuses) are answered byte for byte as Redis answers them."""
    nodes, amb = refused_stack
    request = b"".join(frames)
    nodes.master.client().delete("k", "n")
    direct = _exchange(nodes.master.port, request)
    nodes.master.client().delete("k", "n")
    assert _exchange(amb.port, request) == direct


@pytest.fixture(scope="module")
def refused_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisSet, AmbassadorProcess]]:
    nodes = start_redis_set(tmp_path_factory.mktemp("redis"), replicas=0)
    amb = start_ambassador(
        ambassador_args(nodes, "--read-policy", "master"), tmp_path_factory.mktemp("amb")
    )
    try:
        for frame in _FRAMES[:5]:  # names the fast path then takes
            _exchange(amb.port, frame)
        yield nodes, amb
    finally:
        amb.stop()
        for node in nodes.all():
            node.stop()
