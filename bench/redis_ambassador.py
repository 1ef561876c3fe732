"""Benchmark: redis-benchmark GET/SET against Redis directly and through the proxies in front of
the same Redis, in one run, so ratios compare like with like.

    python bench/redis_ambassador.py [--requests 200000] [--clients 50] [--rounds 5]

Targets: Redis direct; redis-ambassador master-only; redis-ambassador master + replica with
prefer-replica; twemproxy (Debian ``nutcracker``) and HAProxy in TCP mode (Debian ``haproxy``)
when installed. Prints requests/s, the ratios to direct and to twemproxy, and p99 latency;
every process started here is stopped, and every run has a deadline.

This machine's speed moves by a third from one minute to the next, more than the differences
measured. So the targets are measured in rounds: in each round every target runs once per
pipeline depth, in an order rotated from round to round, and each ratio is taken against the
reference measured in the same round. The table gives the median over the rounds of each
figure, and the range of the ratios to direct."""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_DEADLINE = 300.0


_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this run (the kernel may give the same
    one twice in a row)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers PING on port {port}")


@dataclass
class Result:
    target: str
    pipeline: int
    test: str
    rps: float
    p99_ms: float


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def redis_benchmark(
    port: int, pipeline: int, requests: int, clients: int
) -> list[tuple[str, float, float]]:
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "get,set", "-c", str(clients),
         "-n", str(requests), "-P", str(pipeline), "--csv"],
        capture_output=True, text=True, timeout=RUN_DEADLINE, check=True,
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    return [(row["test"], float(row["rps"]), float(row["p99_latency_ms"])) for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipelines", default="1,16")
    parser.add_argument("--rounds", type=int, default=5, help="measurements of each target")
    args = parser.parse_args()
    for program in ("redis-server", "redis-benchmark"):
        if shutil.which(program) is None:
            print(f"{program} is required", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="bench-redis-ambassador-"))
    procs = Processes()
    try:
        master, replica = free_port(), free_port()
        common = ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--dir", str(work)]
        procs.start(["redis-server", "--port", str(master), *common], work / "master.log")
        wait_port(master)
        procs.start(
            [
                "redis-server",
                "--port",
                str(replica),
                "--replicaof",
                "127.0.0.1",
                str(master),
                *common,
            ],
            work / "replica.log",
        )
        wait_port(replica)
        targets: dict[str, int] = {"redis direct": master}
        amb = [
            sys.executable,
            "-m",
            "ambassadors.redis_split",
            "-q",
            "--master",
            f"127.0.0.1:{master}",
        ]
        port = free_port()
        procs.start(
            [*amb, "--listen", f"127.0.0.1:{port}", "--read-policy", "master"], work / "a1.log"
        )
        targets["ambassador master-only"] = port
        port = free_port()
        procs.start(
            [*amb, "--listen", f"127.0.0.1:{port}", "--replica", f"127.0.0.1:{replica}",
             "--read-policy", "prefer-replica"],
            work / "a2.log",
        )  # fmt: skip
        targets["ambassador +replica prefer-replica"] = port
        if shutil.which("nutcracker") or Path("/usr/sbin/nutcracker").exists():
            port = free_port()
            conf = work / "nutcracker.yml"
            conf.write_text(
                f"bench:\n  listen: 127.0.0.1:{port}\n  redis: true\n  hash: fnv1a_64\n"
                f"  distribution: ketama\n  server_connections: 1\n"
                f"  servers:\n   - 127.0.0.1:{master}:1\n"
            )
            binary = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
            procs.start([binary, "-c", str(conf), "-s", str(free_port())], work / "nutcracker.log")
            targets["twemproxy"] = port
        else:
            print("twemproxy (nutcracker) not installed: skipped", file=sys.stderr)
        if shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists():
            port = free_port()
            conf = work / "haproxy.cfg"
            conf.write_text(
                "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 1s\n"
                "  timeout client 60s\n  timeout server 60s\n"
                f"listen redis\n  bind 127.0.0.1:{port}\n  server master 127.0.0.1:{master}\n"
            )
            binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
            procs.start([binary, "-f", str(conf), "-db"], work / "haproxy.log")
            targets["haproxy tcp"] = port
        else:
            print("haproxy not installed: skipped", file=sys.stderr)
        for port in targets.values():
            wait_port(port)
        time.sleep(0.5)  # the ambassadors' first health checks

        rounds: list[list[Result]] = []
        names = list(targets)
        for number in range(args.rounds):
            results: list[Result] = []
            order = names[number % len(names) :] + names[: number % len(names)]
            for pipeline in (int(p) for p in args.pipelines.split(",")):
                for name in order:
                    port = targets[name]
                    for test, rps, p99 in redis_benchmark(
                        port, pipeline, args.requests, args.clients
                    ):
                        results.append(Result(name, pipeline, test, rps, p99))
                        print(
                            f"round {number + 1} {name:36} -P {pipeline:<3} {test:4} "
                            f"{rps:>10.0f} req/s p99 {p99:.3f}",
                            file=sys.stderr,
                            flush=True,
                        )
            rounds.append(results)
        print_table(rounds)
        return 0
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Figures:
    """One target's figures for one test, each a list over the rounds."""

    rps: list[float]
    versus_direct: list[float]
    versus_twemproxy: list[float]
    p99_ms: list[float]
    added_p99_ms: list[float]


def paired_figures(rounds: list[list[Result]]) -> dict[tuple[str, int, str], Figures]:
    """Each result set against the references measured in its own round."""
    figures: dict[tuple[str, int, str], Figures] = {}
    for results in rounds:
        direct = {(r.pipeline, r.test): r for r in results if r.target == "redis direct"}
        twem = {(r.pipeline, r.test): r for r in results if r.target == "twemproxy"}
        for r in results:
            ref = direct[(r.pipeline, r.test)]
            key = (r.target, r.pipeline, r.test)
            fig = figures.setdefault(key, Figures([], [], [], [], []))
            fig.rps.append(r.rps)
            fig.versus_direct.append(r.rps / ref.rps)
            peer = twem.get((r.pipeline, r.test))
            if peer is not None:
                fig.versus_twemproxy.append(r.rps / peer.rps)
            fig.p99_ms.append(r.p99_ms)
            fig.added_p99_ms.append(r.p99_ms - ref.p99_ms)
    return figures


def print_table(rounds: list[list[Result]]) -> None:
    figures = paired_figures(rounds)
    print(f"\nMedians over {len(rounds)} rounds; each ratio is to the reference of its own round.")
    print(
        "\n| target | -P | test | req/s | x direct | x direct, range | x twemproxy | p99 ms "
        "| added p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (target, pipeline, test), fig in figures.items():
        versus = f"{median(fig.versus_twemproxy):.2f}" if fig.versus_twemproxy else "-"
        print(
            f"| {target} | {pipeline} | {test} | {median(fig.rps):,.0f} "
            f"| {median(fig.versus_direct):.2f} "
            f"| {min(fig.versus_direct):.2f} to {max(fig.versus_direct):.2f} | {versus} "
            f"| {median(fig.p99_ms):.3f} | {median(fig.added_p99_ms):+.3f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
