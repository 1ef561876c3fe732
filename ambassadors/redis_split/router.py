"""Which kind of route a command takes, from the master's command table plus the few commands
whose meaning is about the connection rather than the data."""

from __future__ import annotations

from collections.abc import Container
from enum import Enum

from .commands import CommandTable
from .resp import Command


class Action(Enum):
    READ = "read"  # replica-eligible under the read policy
    SCAN = "scan"  # a read whose cursor must stay on one node for the session
    WRITE = "write"  # master; counts as a write for read-your-writes
    MASTER = "master"  # master, not a write (admin, introspection, PING)
    BLOCKING = "blocking"  # master, may wait indefinitely: no upstream reply deadline
    BROADCAST = "broadcast"  # master's reply to the client; also applied on every replica
    STATE = "state"  # connection state: master's reply; mirrored and replayed on other nodes
    RESET = "reset"
    SUBSCRIBE = "subscribe"  # the session becomes a pass-through to a master connection
    MULTI = "multi"
    EXEC = "exec"  # EXEC / DISCARD: ends MULTI and WATCH
    WATCH = "watch"
    UNWATCH = "unwatch"
    QUIT = "quit"


# Commands that concern the client connection itself; COMMAND INFO cannot say this.
_BY_NAME: dict[bytes, Action] = {
    b"select": Action.STATE,
    b"auth": Action.STATE,
    b"hello": Action.STATE,
    b"reset": Action.RESET,
    b"subscribe": Action.SUBSCRIBE,
    b"psubscribe": Action.SUBSCRIBE,
    b"ssubscribe": Action.SUBSCRIBE,
    b"monitor": Action.SUBSCRIBE,
    b"multi": Action.MULTI,
    b"exec": Action.EXEC,
    b"discard": Action.EXEC,
    b"watch": Action.WATCH,
    b"unwatch": Action.UNWATCH,
    b"quit": Action.QUIT,
    b"scan": Action.SCAN,
    b"sscan": Action.SCAN,
    b"hscan": Action.SCAN,
    b"zscan": Action.SCAN,
    # The list, pinned here so they stay right even before the table has loaded:
    # the non-_RO variants write (or may), scripts may write, WAIT belongs to the write path.
    b"sort": Action.WRITE,
    b"georadius": Action.WRITE,
    b"georadiusbymember": Action.WRITE,
    b"xreadgroup": Action.WRITE,
    b"eval": Action.WRITE,
    b"evalsha": Action.WRITE,
    b"fcall": Action.WRITE,
    b"publish": Action.WRITE,
    b"spublish": Action.WRITE,
    b"wait": Action.BLOCKING,
    b"waitaof": Action.BLOCKING,
}
# CLIENT TRACKING too: a client's reads land on replicas, so tracking must be on there as well
# (replicas invalidate keys that replication changes).
_CLIENT_STATE = frozenset({b"setname", b"setinfo", b"tracking"})
_SCRIPT_BROADCAST = frozenset({b"load", b"flush"})
_BLOCK_OPTION = b"block"


# Commands whose action depends on the name alone, memoised per table: the lookup below runs
# for every forwarded command.
_memo: dict[bytes, Action] = {}
_memo_table: list[CommandTable | None] = [None]
_ARG_DEPENDENT = frozenset({b"client", b"script", b"xread"})
# The names whose action is memoised never need their arguments: the request scanner skips
# copying them. (The same dict, cleared in place when the table changes; a command scanned
# just before that is classified with no arguments, which for a name that was not
# arg-dependent gives the same answer, or the master for a name that became a container.)
NAME_ONLY: Container[bytes] = _memo


def classify_by_name(name: bytes, table: CommandTable) -> Action | None:
    """The action of a command whose route depends on its (lower-case) name alone, once
    ``classify`` has seen it under this table; None otherwise (ask ``classify``)."""
    action = _BY_NAME.get(name)
    if action is not None or _memo_table[0] is not table:
        return action
    return _memo.get(name)


def classify(command: Command, table: CommandTable) -> Action:
    name = command.name
    action = _BY_NAME.get(name)
    if action is not None:
        return action
    if _memo_table[0] is not table:
        _memo.clear()
        _memo_table[0] = table
    action = _memo.get(name)
    if action is not None:
        return action
    action = _classify_by_table(command, table)
    if name not in _ARG_DEPENDENT and name not in table.containers:
        _memo[name] = action
    return action


def _classify_by_table(command: Command, table: CommandTable) -> Action:
    name = command.name
    sub = command.args[0].lower() if command.args else None
    if name == b"client" and sub in _CLIENT_STATE:
        return Action.STATE
    if name == b"script" and sub in _SCRIPT_BROADCAST:
        return Action.BROADCAST
    info = table.get(name, sub)
    if info is None:
        return Action.WRITE  # unknown: the master decides, and we assume it may write
    flags = info.flags
    if b"blocking" in flags:
        # XREAD is flagged blocking but only blocks with the BLOCK option.
        if name == b"xread" and not any(a.lower() == _BLOCK_OPTION for a in command.args):
            return Action.READ
        return Action.BLOCKING
    if b"readonly" in flags and b"write" not in flags:
        return Action.READ
    if b"write" in flags or b"may_replicate" in flags:
        return Action.WRITE
    if b"pubsub" in flags:
        return Action.WRITE
    return Action.MASTER
