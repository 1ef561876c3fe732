"""Flag parsing: values users pass become the config; wrong values are one-line errors."""

from __future__ import annotations

import pytest

from ambassadors.redis_split.__main__ import _parser, build_config
from ambassadors.redis_split.config import ConfigError, ReadPolicy, parse_lag


def config(*argv: str):  # type: ignore[no-untyped-def]
    return build_config(_parser().parse_args(list(argv)))


def test_compose_command_line() -> None:
    made = config(
        "--listen", "127.0.0.1:6379", "--master", "redis-master:6379",
        "--replica", "redis-replica-1:6379", "--replica", "redis-replica-2:6379",
        "--read-policy", "prefer-replica", "--http-bind", "0.0.0.0:9121",
    )  # fmt: skip
    assert made.master is not None and made.master.host == "redis-master"
    assert [r.host for r in made.replicas] == ["redis-replica-1", "redis-replica-2"]
    assert made.read_policy is ReadPolicy.PREFER_REPLICA
    assert made.http_bind is not None and made.http_bind.port == 9121


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1048576", (1048576, None)), ("1mb", (1 << 20, None)), ("500ms", (None, 0.5)),
     ("2s", (None, 2.0)), ("64kb,1s", (65536, 1.0))],
)  # fmt: skip
def test_max_replica_lag_accepts_bytes_and_time(value: str, expected: tuple[object, ...]) -> None:
    assert parse_lag("--max-replica-lag", value) == expected


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--master", "h:1", "--read-policy", "nearest"], "--read-policy"),
        ([], "--master"),
        (["--master", "h:notaport"], "--master"),
        (["--master", "h:1", "--max-replica-lag", "soon"], "--max-replica-lag"),
        (["--sentinel", "s:26379"], "--sentinel-master"),
        (["--master", "h:1", "--sentinel", "s:1", "--sentinel-master", "m"], "--master"),
    ],
)
def test_config_errors_name_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        config(*argv)


def test_bind_flags_accept_port_only_meaning_every_interface() -> None:
    made = config("--master", "h:1", "--listen", ":6380", "--http-bind", ":9121")
    assert (made.listen.host, made.listen.port) == ("0.0.0.0", 6380)
    assert made.http_bind is not None
    assert (made.http_bind.host, made.http_bind.port) == ("0.0.0.0", 9121)


def test_upstream_addresses_still_need_a_host() -> None:
    with pytest.raises(ConfigError, match="--master"):
        config("--master", ":6379")
