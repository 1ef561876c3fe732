"""The local Redis fixture gives a master whose writes reach both replicas."""

from __future__ import annotations

import time

from tests.fixtures.redis_nodes import RedisSet


def test_writes_to_master_replicate(redis_set: RedisSet) -> None:
    redis_set.master.client().set("greeting", "hello")
    for replica in redis_set.replicas:
        deadline = time.monotonic() + 5
        while replica.client().get("greeting") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert replica.client().get("greeting") == b"hello"
        assert replica.client().info("replication")["role"] == "slave"
