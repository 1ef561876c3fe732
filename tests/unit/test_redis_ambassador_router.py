"""Routing rules: classification follows the flags in the master's COMMAND reply, with the
connection-level and special cases of the issue fixed by name."""

from __future__ import annotations

import pytest

from ambassadors.redis_split.commands import table_from_command_reply
from ambassadors.redis_split.control import Value
from ambassadors.redis_split.resp import RequestScanner, encode_command
from ambassadors.redis_split.router import Action, classify


def entry(name: str, *flags: str, subcommands: list[Value] | None = None) -> list[Value]:
    """One COMMAND reply entry in Redis 7's ten-element shape."""
    return [name.encode(), -1, [f.encode() for f in flags], 1, 1, 1, [], [], [], subcommands or []]


TABLE = table_from_command_reply(
    [
        entry("get", "readonly", "fast"),
        entry("set", "write", "denyoom"),
        entry("sort", "write", "denyoom", "movablekeys"),
        entry("sort_ro", "readonly", "movablekeys"),
        entry("georadius_ro", "readonly"),
        entry("eval_ro", "readonly", "noscript", "stale"),
        entry("evalsha_ro", "readonly", "noscript", "stale"),
        entry("fcall_ro", "readonly", "noscript", "stale"),
        entry("xread", "readonly", "blocking", "movablekeys"),
        entry("blpop", "write", "blocking"),
        entry("ping", "fast"),
        entry("info", "loading", "stale"),
        entry("pfcount", "readonly", "may_replicate"),
        entry(
            "config",
            subcommands=[entry("config|get", "admin", "noscript"), entry("config|set", "admin")],
        ),
        entry("script", subcommands=[entry("script|exists", "noscript")]),
    ]
)


def route(*args: str) -> Action:
    command = RequestScanner().scan(encode_command(*args), 0)
    assert command is not None
    return classify(command, TABLE)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("GET", "k"), Action.READ),
        (("SET", "k", "v"), Action.WRITE),
        (("SORT", "k"), Action.WRITE),
        (("SORT_RO", "k"), Action.READ),
        (("GEORADIUS", "k", "0", "0", "1", "km"), Action.WRITE),
        (("GEORADIUS_RO", "k", "0", "0", "1", "km"), Action.READ),
        (("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"), Action.WRITE),
        (("XREAD", "STREAMS", "s", "0"), Action.READ),
        (("XREAD", "BLOCK", "100", "STREAMS", "s", "$"), Action.BLOCKING),
        (("BLPOP", "q", "0"), Action.BLOCKING),
        (("EVAL", "return 1", "0"), Action.WRITE),
        (("EVALSHA", "abc", "0"), Action.WRITE),
        (("FCALL", "f", "0"), Action.WRITE),
        (("EVAL_RO", "return 1", "0"), Action.READ),
        (("EVALSHA_RO", "abc", "0"), Action.READ),
        (("FCALL_RO", "f", "0"), Action.READ),
        (("SCRIPT", "LOAD", "return 1"), Action.BROADCAST),
        (("SCRIPT", "FLUSH"), Action.BROADCAST),
        (("SCRIPT", "EXISTS", "abc"), Action.MASTER),
        (("PUBLISH", "ch", "m"), Action.WRITE),
        (("WAIT", "1", "0"), Action.BLOCKING),
        (("SCAN", "0"), Action.SCAN),
        (("HSCAN", "h", "0"), Action.SCAN),
        (("INFO",), Action.MASTER),
        (("CONFIG", "GET", "maxmemory"), Action.MASTER),
        (("PING",), Action.MASTER),
        (("PFCOUNT", "h"), Action.READ),
        (("SELECT", "1"), Action.STATE),
        (("AUTH", "pw"), Action.STATE),
        (("HELLO", "3"), Action.STATE),
        (("CLIENT", "SETNAME", "app"), Action.STATE),
        (("SUBSCRIBE", "ch"), Action.SUBSCRIBE),
        (("MONITOR",), Action.SUBSCRIBE),
        (("MULTI",), Action.MULTI),
        (("EXEC",), Action.EXEC),
        (("DISCARD",), Action.EXEC),
        (("WATCH", "k"), Action.WATCH),
        (("NOSUCHCOMMAND",), Action.WRITE),
    ],
)
def test_classification(args: tuple[str, ...], expected: Action) -> None:
    assert route(*args) is expected


def test_lower_and_mixed_case_names_route_the_same() -> None:
    assert route("get", "k") is route("GeT", "k") is Action.READ


def test_empty_table_sends_everything_to_the_master() -> None:
    command = RequestScanner().scan(encode_command("GET", "k"), 0)
    assert command is not None
    assert classify(command, table_from_command_reply([])) is Action.WRITE
