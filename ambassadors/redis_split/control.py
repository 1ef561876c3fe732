"""A minimal Redis client for the ambassador's own commands (INFO, COMMAND, SCRIPT, SENTINEL).

Unlike the forwarding path, control replies are decoded into Python values. One command at a
time, every call with a deadline, and the host name is resolved at every (re)connect so a
Kubernetes Service or compose name that moves is followed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypeAlias

from .resp import ReplyScanner, UpstreamProtocolError, encode_command


@dataclass(frozen=True, slots=True)
class ReplyError:
    message: str


Value: TypeAlias = "bytes | int | list[Value] | ReplyError | None"


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def decode(buf: bytes, pos: int = 0) -> tuple[Value, int]:
    """Decode one complete reply starting at ``pos``; returns the value and the end offset."""
    kind = buf[pos]
    eol = buf.index(b"\r\n", pos)
    head = buf[pos + 1 : eol]
    nxt = eol + 2
    if kind in b"+(,":
        return head, nxt
    if kind == ord(":"):
        return int(head), nxt
    if kind == ord("#"):
        return int(head == b"t"), nxt
    if kind == ord("_"):
        return None, nxt
    if kind == ord("-"):
        return ReplyError(head.decode(errors="replace")), nxt
    if kind in b"$!=":
        length = int(head)
        if length < 0:
            return None, nxt
        data = buf[nxt : nxt + length]
        if kind == ord("!"):
            return ReplyError(data.decode(errors="replace")), nxt + length + 2
        return data, nxt + length + 2
    if kind in b"*~>%|":
        count = int(head)
        if count < 0:
            return None, nxt
        if kind in b"%|":
            count *= 2
        items: list[Value] = []
        for _ in range(count):
            item, nxt = decode(buf, nxt)
            items.append(item)
        if kind == ord("|"):
            return decode(buf, nxt)
        return items, nxt
    raise UpstreamProtocolError(f"unexpected reply type {chr(kind)!r}")


class ControlClient:
    """One connection, reopened on demand. Not safe for concurrent callers (use one per task)."""

    def __init__(self, address: Address, timeout: float = 1.0, password: str | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self._password = password
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, *args: bytes | str | int) -> Value:
        async with asyncio.timeout(self.timeout):
            try:
                if self._writer is None:
                    self._reader, self._writer = await asyncio.open_connection(
                        self.address.host, self.address.port
                    )
                    if self._password is not None:
                        self._writer.write(encode_command("AUTH", self._password))
                        reply = await self._read_one(self._reader)
                        if isinstance(reply, ReplyError):
                            raise ConnectionError(f"{self.address}: AUTH failed: {reply.message}")
                assert self._reader is not None
                self._writer.write(encode_command(*args))
                return await self._read_one(self._reader)
            except BaseException:
                self.close()
                raise

    async def _read_one(self, reader: asyncio.StreamReader) -> Value:
        buf = bytearray()
        scanner = ReplyScanner()
        while True:
            found = scanner.scan(buf, 0)
            if found is not None:
                value, _ = decode(bytes(buf[found[0] : found[1]]))
                return value
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError(f"{self.address} closed the connection")
            buf += chunk

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def parse_info(raw: bytes) -> dict[str, str]:
    """``INFO`` text as a flat key → value mapping."""
    fields: dict[str, str] = {}
    for line in raw.decode(errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value
    return fields
