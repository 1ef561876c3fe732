"""Security checks of redis-ambassador in front of Redis nodes that require a password.

Already covered elsewhere (not repeated): an app's AUTH to password-less nodes is absent from the
-vv log (test_redis_ambassador_failures.py::test_app_password_never_reaches_the_log), and the
upstream password is absent from the default-level log
(test_redis_ambassador_routing.py::test_nodes_with_a_password)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from ambassadors.redis_split.__main__ import _parser, build_config
from tests.fixtures.redis_nodes import (
    AmbassadorProcess,
    RedisSet,
    ambassador_args,
    command_calls,
)
from tests.integration.proc_probe import listening

NODE_SECRET = "n0de-Secret-4mb"
WRONG_SECRET = "wr0ng-Secret-4mb"


def _raw_auth(port: int, *args: str) -> str:
    """Send one command (AUTH, HELLO ... AUTH) as the first thing on a fresh connection, in
    RESP by hand so no client library sends anything before it; return the first reply line."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload.encode())
        reply = b""
        while b"\r\n" not in reply and len(reply) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode(errors="replace")


def test_redis_passwords_are_not_observable(
    redis_set_factory: Callable[..., RedisSet],
    ambassador_factory: Callable[..., AmbassadorProcess],
    tmp_path: Path,
) -> None:
    """Right and wrong AUTH (password only, ACL user + password, HELLO ... AUTH) through the
    ambassador, with its own upstream password from a file: no password in its log, in
    /metrics, in the error replies the app gets, or in its command line."""
    nodes = redis_set_factory(1, NODE_SECRET)
    secret_file = tmp_path / "upstream-password"
    secret_file.write_text(NODE_SECRET + "\n")
    amb = ambassador_factory(
        ambassador_args(
            nodes,
            "--read-policy",
            "replica",
            "--upstream-password-file",
            str(secret_file),
            "-vv",  # the most verbose level (debug)
        )
    )
    nodes.master.client().config_resetstat()
    replies = [
        _raw_auth(amb.port, "AUTH", NODE_SECRET),
        _raw_auth(amb.port, "AUTH", WRONG_SECRET),
        _raw_auth(amb.port, "AUTH", "default", NODE_SECRET),
        _raw_auth(amb.port, "AUTH", "default", WRONG_SECRET),
        _raw_auth(amb.port, "HELLO", "2", "AUTH", "default", WRONG_SECRET),
    ]
    assert replies[0].startswith("+OK") and replies[2].startswith("+OK"), replies
    assert all(r.startswith("-WRONGPASS") for r in (replies[1], replies[3], replies[4])), replies
    assert command_calls(nodes.master, "auth") >= 4  # the AUTHs reached Redis
    app = redis.Redis(host="127.0.0.1", port=amb.port, password=NODE_SECRET, socket_timeout=5)
    app.set("k", "v")
    nodes.master.client().wait(1, 2000)
    assert app.get("k") == b"v"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=amb.port, password=WRONG_SECRET).get("k")
    status, metrics = amb.http("/metrics")
    assert status == 200 and metrics
    cmdline = Path(f"/proc/{amb.process.pid}/cmdline").read_bytes()
    amb.stop()
    log = amb.log()
    assert log
    for secret in (NODE_SECRET, WRONG_SECRET):
        assert secret not in log
        assert secret not in metrics
        assert all(secret not in reply for reply in replies)
        assert secret.encode() not in cmdline


def test_wrong_upstream_password_is_not_observable(
    redis_set_factory: Callable[..., RedisSet],
    ambassador_factory: Callable[..., AmbassadorProcess],
    tmp_path: Path,
) -> None:
    """The ambassador's own password is wrong: its health checks fail (upstream_up 0, not
    ready) and an app gets an error reply; none of it shows the password."""
    nodes = redis_set_factory(1, NODE_SECRET)
    secret_file = tmp_path / "upstream-password"
    secret_file.write_text(WRONG_SECRET + "\n")
    amb = ambassador_factory(
        ambassador_args(nodes, "--upstream-password-file", str(secret_file), "-vv"), ready=False
    )
    # An app's command goes through the error path too (no master up: an error reply).
    reply = _raw_auth(amb.port, "GET", "k")
    assert reply.startswith("-"), reply
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and amb.metric("redis_ambassador_upstream_up") != 0:
        time.sleep(0.05)
    time.sleep(1)  # some more failed health checks (every 100ms)
    assert amb.http("/ready")[0] != 200
    status, metrics = amb.http("/metrics")
    assert status == 200 and "redis_ambassador_upstream_up" in metrics
    assert amb.metric("redis_ambassador_upstream_up") == 0  # the nodes refused the password
    amb.stop()
    log = amb.log()
    assert log
    assert WRONG_SECRET not in log
    assert WRONG_SECRET not in metrics
    assert WRONG_SECRET not in reply


# -- bind addresses ------------------------------------------------------------------------------


def test_listens_only_where_told(
    redis_set: RedisSet, ambassador_factory: Callable[..., AmbassadorProcess]
) -> None:
    amb = ambassador_factory(ambassador_args(redis_set))
    assert listening(amb.process.pid) == {("127.0.0.1", amb.port), ("127.0.0.1", amb.http_port)}


def test_default_listen_address_is_loopback() -> None:
    """Without --listen the app port is 127.0.0.1:6379, not every interface."""
    config = build_config(_parser().parse_args(["--master", "127.0.0.1:6380"]))
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 6379)
