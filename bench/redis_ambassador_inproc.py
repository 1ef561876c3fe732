"""The ambassador's forwarding path without sockets: what its Python costs per request.

    .venv/bin/python bench/redis_ambassador_inproc.py [--rounds 400] [--opcodes]

Fifty sessions on one shared connection, with transports that only count writes. Each round
every session gets one client write (`-P 1`: one command; `-P 16`: sixteen), the event loop
turns once (the shared connection's write), and Redis's replies for all of them arrive in one
read, as in the `redis-benchmark -c 50` runs of ``redis_ambassador.py``. A redis-server is
started only so that the command table comes from a real master.

The reference, measured in the same run on the same rounds: a minimal multiplexer's work for
the same bytes (hiredis parses the client write, one queue entry per write, the replies split
by a count of complete replies and handed back), which any Python proxy of this kind must do.
The ratio says how much the ambassador's routing, ordering, read-your-writes and metrics add.

Times are the best of five runs (this machine's timing moves by a third from minute to
minute). ``--opcodes`` counts Python bytecodes per request instead: exact, and the same on
every run, so it tells whether a change to the hot path made it cheaper. For the whole process
(uvloop and the interpreter included), count instructions with callgrind around a real
redis-benchmark run, as the issue 4 notes describe.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import hiredis
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ambassadors.redis_split.__main__ import _parser, build_config  # noqa: E402
from ambassadors.redis_split.backends import Backends  # noqa: E402
from ambassadors.redis_split.session import Session  # noqa: E402
from bench.redis_ambassador import free_port, wait_port  # noqa: E402

CLIENTS = 50
WORKLOADS = {
    "SET": (b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n", b"+OK\r\n"),
    "GET": (b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n", b"$3\r\nxxx\r\n"),
}
_INCOMPLETE = object()


class CountingTransport:
    """What a session or a shared connection writes to: counted, not sent."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


Round = Callable[[], Coroutine[Any, Any, None]]


async def ambassador_round(master_port: int, command: bytes, replies: bytes) -> Round:
    """One round through real sessions and a real shared connection."""

    config = build_config(
        _parser().parse_args(["--master", f"127.0.0.1:{master_port}", "--read-policy", "master"])
    )
    assert config.master is not None
    backends = Backends(config, config.master, [])
    await backends.load_table()
    backends.master.up = backends.master.eligible = True
    # The shared connection is given a counting transport below instead of being connected.
    backends.master._start = lambda connect: None  # type: ignore[method-assign]
    sessions = [Session(backends, config, lambda session: None) for _ in range(CLIENTS)]
    for session in sessions:
        session.connection_made(CountingTransport())  # type: ignore[arg-type]
        session.data_received(command)  # opens the session's lane
    shared = backends.master.shared[2][0]
    shared.connection_made(CountingTransport())  # type: ignore[arg-type]
    await asyncio.sleep(0)
    shared.data_received(replies)

    async def run() -> None:
        for session in sessions:
            session.data_received(command)
        await asyncio.sleep(0)
        shared.data_received(replies)

    await run()
    assert not any(session._queue for session in sessions), "replies left undelivered"
    return run


class MinimalMux:
    """The reference: the least a Python multiplexer does with the same bytes."""

    def __init__(self) -> None:
        self.readers = [hiredis.Reader(notEnoughData=_INCOMPLETE) for _ in range(CLIENTS)]
        self.clients = [CountingTransport() for _ in range(CLIENTS)]
        self.owed: collections.deque[tuple[CountingTransport, int]] = collections.deque()
        self.out: list[bytes] = []
        self.upstream = CountingTransport()

    def client_write(self, index: int, data: bytes) -> None:
        reader = self.readers[index]
        reader.feed(data)
        commands = list(iter(reader.gets, _INCOMPLETE))
        self.owed.append((self.clients[index], len(commands)))
        self.out.append(data)

    def flush(self) -> None:
        self.upstream.write(b"".join(self.out))
        self.out.clear()

    def replies(self, buf: bytes) -> None:
        pos = 0
        find = buf.find
        owed = self.owed
        while owed:
            client, count = owed.popleft()
            start = pos
            for _ in range(count):
                end = find(b"\r\n", pos) + 2
                if buf[pos] == 36:  # "$": a bulk string's payload follows its length
                    length = int(buf[pos + 1 : end - 2])
                    if length >= 0:
                        end += length + 2
                pos = end
            client.write(buf[start:pos])


async def reference_round(command: bytes, replies: bytes) -> Round:
    mux = MinimalMux()

    async def run() -> None:
        for index in range(CLIENTS):
            mux.client_write(index, command)
        await asyncio.sleep(0)
        mux.flush()
        mux.replies(replies)

    return run


async def best_time(run: Round, rounds: int) -> float:
    """Seconds per round, the best of five runs of ``rounds`` rounds."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            await run()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best


async def opcodes(run: Round) -> int:
    """Python bytecodes executed by one round."""
    executed = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal executed
        frame.f_trace_opcodes = True
        if event == "opcode":
            executed += 1
        return trace

    sys.settrace(trace)
    try:
        await run()
    finally:
        sys.settrace(None)
    return executed


async def measure(master_port: int, rounds: int, count_opcodes: bool) -> None:
    unit = "bytecodes/request" if count_opcodes else "µs/request, best of 5"
    print(f"| -P | test | ambassador ({unit}) | minimal multiplexer | ratio |")
    print("|---|---|---|---|---|")
    for pipeline in (1, 16):
        for test, (command, reply) in WORKLOADS.items():
            command_bytes = command * pipeline
            reply_bytes = reply * pipeline * CLIENTS
            requests = CLIENTS * pipeline
            ours = await ambassador_round(master_port, command_bytes, reply_bytes)
            floor = await reference_round(command_bytes, reply_bytes)
            if count_opcodes:
                a, b = await opcodes(ours) / requests, await opcodes(floor) / requests
                print(f"| {pipeline} | {test} | {a:.0f} | {b:.0f} | {a / b:.1f} |")
            else:
                a = await best_time(ours, rounds) / requests * 1e6
                b = await best_time(floor, rounds) / requests * 1e6
                print(f"| {pipeline} | {test} | {a:.2f} | {b:.2f} | {a / b:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--opcodes", action="store_true", help="count bytecodes, not time")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is required", file=sys.stderr)
        return 1
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-ambassador-inproc-") as work:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1", "--dir", work],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_port(port)
            uvloop.run(measure(port, args.rounds, args.opcodes))
        finally:
            redis.terminate()
            redis.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
