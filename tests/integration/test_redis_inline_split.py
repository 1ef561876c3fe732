"""The ambassador routes inline commands by the arguments it splits out of them; Redis splits
the same line again when it runs it. Both must agree, so ``split_inline`` is checked here against
a real redis-server: the arguments Redis pushed to a list, or its error, for the same line."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambassadors.redis_split.resp import ProtocolError, split_inline
from tests.fixtures.redis_nodes import RedisNode, free_port

# Blanks of every kind, both quotes, backslashes and hex escapes: where splitting rules differ.
# No LF (it ends the inline command) and no NUL (refused: see split_inline).
_PIECES = st.sampled_from(
    [" ", "  ", "\t", "\r", "\x0b", "\x0c", '"', "'", "\\", "\\x", "\\n", "\\'", '\\"', "4", "f",
     "g", "a", "x", "é", "\\x4", "\\xzz", '""', "''"]
)  # fmt: skip


@pytest.fixture(scope="module")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    base: Path = tmp_path_factory.mktemp("inline-split")
    node = RedisNode(port=free_port(), workdir=base / "redis")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def redis_split(port: int, line: bytes) -> list[bytes] | str:
    """What Redis makes of ``RPUSH k <line>``: the pushed values, or its error message."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"DEL k\r\nRPUSH k "
            + line
            + b"\r\n*4\r\n$6\r\nLRANGE\r\n$1\r\nk\r\n$1\r\n0\r\n$2\r\n-1\r\n"
        )
        reader = hiredis.Reader()
        replies: list[object] = []
        while len(replies) < 3:
            data = sock.recv(65536)
            if not data:
                break  # Redis closes the connection after a protocol error
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                replies.append(reply)
    assert replies[0] in (0, 1)  # DEL
    pushed = replies[1]
    if isinstance(pushed, hiredis.ReplyError):
        return str(pushed)
    values = replies[2]
    assert isinstance(values, list)
    return values


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_PIECES, min_size=1, max_size=12).map("".join))
def test_inline_lines_split_as_redis_splits_them(redis_node: RedisNode, text: str) -> None:
    line = text.encode()
    found = redis_split(redis_node.port, line)
    try:
        words = split_inline(b"RPUSH k " + line)
    except ProtocolError as exc:
        assert found == f"ERR {exc}"  # (the ambassador replies with the same error)
        return
    if len(words) < 3:
        assert isinstance(found, str) and "wrong number of arguments" in found
    else:
        assert found == words[2:]
