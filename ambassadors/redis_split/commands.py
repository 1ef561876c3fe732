"""The command table: each command's flags as the master reports them in ``COMMAND``.

Redis is the source of truth for what a command does (``write``, ``readonly``, ``blocking``,
``may_replicate``...), so a new Redis version's commands are classified without a code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .control import Value


@dataclass(frozen=True, slots=True)
class CommandInfo:
    name: bytes
    flags: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class CommandTable:
    """Commands by lower-case name; subcommands as ``b"script|load"``."""

    commands: dict[bytes, CommandInfo] = field(default_factory=dict)
    containers: frozenset[bytes] = frozenset()  # names with subcommands (CONFIG, OBJECT...)

    def __len__(self) -> int:
        return len(self.commands)

    def get(self, name: bytes, sub: bytes | None = None) -> CommandInfo | None:
        if sub is not None:
            found = self.commands.get(name + b"|" + sub.lower())
            if found is not None:
                return found
        return self.commands.get(name)


def _entries(reply: Value) -> list[list[Value]]:
    if not isinstance(reply, list):
        raise ValueError("COMMAND did not return an array")
    return [entry for entry in reply if isinstance(entry, list) and len(entry) >= 3]


def table_from_command_reply(reply: Value) -> CommandTable:
    """Build the table from the reply to a bare ``COMMAND`` (all commands, with subcommands)."""
    commands: dict[bytes, CommandInfo] = {}
    containers: set[bytes] = set()
    pending = _entries(reply)
    while pending:
        entry = pending.pop()
        name, flags = entry[0], entry[2]
        if not isinstance(name, bytes) or not isinstance(flags, list):
            continue
        commands[name.lower()] = CommandInfo(
            name=name.lower(),
            flags=frozenset(flag.lower() for flag in flags if isinstance(flag, bytes)),
        )
        # Redis 7: the tenth element lists subcommands in the same shape ("config|get").
        if len(entry) >= 10 and isinstance(entry[9], list) and entry[9]:
            containers.add(name.lower())
            pending.extend(_entries(entry[9]))
    return CommandTable(commands, frozenset(containers))
