"""What another process on the machine could observe of a service: the command lines and
environments of its descendants (``/proc/<pid>/cmdline``, ``/proc/<pid>/environ``), and the TCP/UDP
sockets it listens on (``/proc/net/{tcp,tcp6,udp,udp6}`` joined with ``/proc/<pid>/fd``)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

PROC = Path("/proc")


def _parent_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) >= 2:
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """The PIDs below ``pid`` in the process tree (not ``pid`` itself)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parent_map().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = list(children.get(pid, []))
    while todo and len(found) < 10_000:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children.get(current, []))
    return found


class DescendantWatcher:
    """Polls the cmdline and environ of every descendant of ``pid`` in a background thread,
    for at most ``limit`` seconds or until ``stop``; ``seen`` maps a PID to what was read."""

    def __init__(self, pid: int, limit: float = 30.0, interval: float = 0.005) -> None:
        self.pid = pid
        self.limit = limit
        self.interval = interval
        self.seen: dict[int, tuple[bytes, bytes]] = {}
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DescendantWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.limit + 5)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        # Between fork and exec a child still shows its parent's memory: the service's own
        # command line and environment, which the user gave it. Only what was exec'd counts.
        try:
            own = (PROC / str(self.pid) / "cmdline").read_bytes()
        except OSError:
            own = b""
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.polls += 1
            for pid in descendants(self.pid):
                try:
                    cmdline = (PROC / str(pid) / "cmdline").read_bytes()
                    environ = (PROC / str(pid) / "environ").read_bytes()
                except OSError:
                    continue
                if cmdline and cmdline != own:  # empty once the process became a zombie
                    self.seen[pid] = (cmdline, environ)
            time.sleep(self.interval)

    def command_lines(self) -> list[str]:
        return [c.replace(b"\0", b" ").decode(errors="replace") for c, _ in self.seen.values()]

    def exposing(self, secret: str) -> list[str]:
        """The descendants whose cmdline or environ holds ``secret``, as readable lines."""
        needle = secret.encode()
        return [
            f"pid {pid}: " + cmdline.replace(b"\0", b" ").decode(errors="replace")
            for pid, (cmdline, environ) in self.seen.items()
            if needle in cmdline or needle in environ
        ]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = PROC / str(pid) / "fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _decode_address(hex_address: str) -> tuple[str, int]:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    if len(raw) == 4:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        host = socket.inet_ntop(socket.AF_INET6, words)
    return host, int(port_hex, 16)


def listening(pid: int, protocol: str = "tcp") -> set[tuple[str, int]]:
    """(host, port) of the sockets ``pid`` listens on: TCP in LISTEN state, or bound UDP."""
    inodes = _socket_inodes(pid)
    found = set()
    for table in (protocol, protocol + "6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes:
                continue
            if protocol == "tcp" and state != "0A":  # 0A: LISTEN
                continue
            found.add(_decode_address(local))
    return found
