"""StatsD ingest benchmark: how many lines/s the adapter turns into series, against a bare Python
UDP receiver measured in the same run.

    .venv/bin/python bench/statsd_ingest.py [--rate 200000] [--seconds 5] [--series 100000]

1. Sustained: while /metrics is scraped once a second, a paced sender sends
   ``rate * seconds`` lines (c, g, ms and DogStatsD-tagged lines over ~1000 names, 20 lines per
   datagram) to an adapter started with ``--statsd.read-buffer=4194304``; then polls the
   adapter's own ``statsd_exporter_lines_total`` until it stops moving and reports lines
   processed/lost and the kernel's UDP RcvbufErrors.
2. Saturation: paced runs at rising rates find the highest rate the adapter keeps up with (loss
   under 0.1 %); then the same lines sent unpaced, to the adapter and to a bare receiver (a
   Python process that only counts lines, with the same socket buffer), and the ratio.
3. Memory: RSS of an adapter holding ``--series`` live series.

The sender is Python too and shares the machine's cores with the receiver; the figures it prints
are what this machine did, not a promise.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.statsd_adapter import Adapter, free_udp_tcp_port  # noqa: E402

LINES_PER_DATAGRAM = 20
READ_BUFFER = 4 * 1024 * 1024

BARE_RECEIVER = textwrap.dedent(
    """
    import socket, sys, time
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(sys.argv[2]))
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    print("ready", flush=True)
    sock.settimeout(None)
    data = sock.recv(65535)
    lines = data.count(b"\\n") + 1
    first = last = time.monotonic()
    sock.settimeout(1.0)
    while True:
        try:
            data = sock.recv(65535)
        except socket.timeout:
            break
        lines += data.count(b"\\n") + 1
        last = time.monotonic()
    print(lines, first, last, flush=True)
    """
)


def workload(seed: int = 7) -> list[bytes]:
    """20 000 datagrams of 20 lines: counters, gauges, timers and DogStatsD-tagged counters."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(20000 * LINES_PER_DATAGRAM):
        n = rnd.randrange(1000)
        kind = n % 4
        if kind == 0:
            lines.append(f"app.svc{n % 50}.requests{n}:1|c")
        elif kind == 1:
            lines.append(f"app.svc{n % 50}.queue{n}:{rnd.randrange(100)}|g")
        elif kind == 2:
            lines.append(f"app.svc{n % 50}.latency{n}:{rnd.random() * 100:.3f}|ms")
        else:
            lines.append(f"app.svc{n % 50}.hits{n}:1|c|#env:prod,host:h{n % 10}")
    return [
        "\n".join(lines[i : i + LINES_PER_DATAGRAM]).encode()
        for i in range(0, len(lines), LINES_PER_DATAGRAM)
    ]


def load_average() -> str:
    """The machine is shared: how busy it was is part of every figure."""
    return Path("/proc/loadavg").read_text().split()[0]


def rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])


def send(port: int, datagrams: list[bytes], total_lines: int, rate: float | None) -> float:
    """Send ``total_lines`` lines (cycling through the workload); paced at ``rate`` lines/s, or as
    fast as possible. Returns the seconds it took."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    count = total_lines // LINES_PER_DATAGRAM
    began = time.monotonic()
    per_datagram = LINES_PER_DATAGRAM / rate if rate else 0.0
    sendto = sock.sendto
    n = len(datagrams)
    for i in range(count):
        sendto(datagrams[i % n], target)
        if rate and i % 50 == 49:
            ahead = began + (i + 1) * per_datagram - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    sock.close()
    return time.monotonic() - began


def lines_total(adapter: Adapter) -> float:
    text = requests.get(f"{adapter.url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("statsd_exporter_lines_total "):
            return float(line.split()[1])
    raise RuntimeError("no statsd_exporter_lines_total")


def wait_flat(adapter: Adapter, idle: float = 1.0) -> tuple[float, float]:
    """Poll until the lines counter stops moving; returns (lines, time it last moved)."""
    last_value = lines_total(adapter)
    last_change = time.monotonic()
    while time.monotonic() - last_change < idle:
        time.sleep(0.1)
        value = lines_total(adapter)
        if value != last_value:
            last_value, last_change = value, time.monotonic()
    return last_value, last_change


def start_adapter(workdir: Path, *extra: str) -> Adapter:
    return Adapter(
        workdir,
        ["--statsd.listen-tcp=", f"--statsd.read-buffer={READ_BUFFER}", "--log.level=warn", *extra],
    ).start()


SCRAPER = textwrap.dedent(
    """
    import sys, time, urllib.request
    url, longest, count = sys.argv[1], 0.0, 0
    while sys.stdin.readline().strip() == "scrape":
        began = time.monotonic()
        urllib.request.urlopen(url, timeout=30).read()
        longest, count = max(longest, time.monotonic() - began), count + 1
        print(count, longest, flush=True)
    """
)


class Scraper:
    """Scrapes /metrics once a second, as Prometheus would, while the sender runs. A separate
    process, so that it does not take the sender's GIL and turn paced sending into bursts."""

    def __init__(self, adapter: Adapter) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, f"{adapter.url}/metrics"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.count = 0
        self.longest = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        while not self.done.wait(1.0):
            self.process.stdin.write("scrape\n")
            self.process.stdin.flush()
            count, longest = self.process.stdout.readline().split()
            self.count, self.longest = int(count), float(longest)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def sustained(datagrams: list[bytes], rate: float, seconds: float, workdir: Path) -> None:
    adapter = start_adapter(workdir / "sustained")
    try:
        total = int(rate * seconds)
        before_errors = rcvbuf_errors()
        base = lines_total(adapter)
        scraper = Scraper(adapter)
        took = send(adapter.statsd_port, datagrams, total, rate)
        scraper.stop()
        processed, _ = wait_flat(adapter)
        processed -= base
        errors = rcvbuf_errors() - before_errors
        print(
            f"sustained: sent {total:,} lines in {took:.2f}s "
            f"({total / took:,.0f} lines/s offered); "
            f"processed {processed:,.0f}; lost {total - processed:,.0f} "
            f"({(total - processed) / total:.2%}); kernel RcvbufErrors +{errors}; "
            f"{scraper.count} scrapes meanwhile, longest {scraper.longest:.3f}s; "
            f"load average {load_average()}"
        )
    finally:
        adapter.stop()


def paced_loss(
    adapter: Adapter, datagrams: list[bytes], rate: float, seconds: float
) -> tuple[float, float]:
    """Lines lost (fraction) when sending at ``rate`` for ``seconds``, and the rate the sender
    really achieved."""
    total = int(rate * seconds)
    base = lines_total(adapter)
    took = send(adapter.statsd_port, datagrams, total, rate)
    processed, _ = wait_flat(adapter, idle=0.5)
    return (total - (processed - base)) / total, total / took


def saturation(
    datagrams: list[bytes], total: int, rates: list[float], workdir: Path
) -> tuple[float, float]:
    adapter = start_adapter(workdir / "saturation")
    best = 0.0
    try:
        # The highest paced rate the adapter keeps up with (loss under 0.1 %).
        for rate in rates:
            before_errors = rcvbuf_errors()
            loss, achieved = paced_loss(adapter, datagrams, rate, 3.0)
            errors = rcvbuf_errors() - before_errors
            print(
                f"  paced {rate:,.0f} lines/s for 3 s (sender achieved {achieved:,.0f}): "
                f"lost {loss:.2%}, RcvbufErrors +{errors}; load average {load_average()}"
            )
            if loss < 0.001:
                best = rate
            else:
                break
        # And unpaced: as fast as this Python sender goes.
        base = lines_total(adapter)
        began = time.monotonic()
        took = send(adapter.statsd_port, datagrams, total, None)
        processed, moved = wait_flat(adapter)
        processed -= base
        print(
            f"saturation (adapter): highest lossless paced rate {best:,.0f} lines/s; unpaced "
            f"blast of {total:,} lines at {total / took:,.0f} lines/s: processed "
            f"{processed:,.0f} ({processed / max(moved - began, 1e-9):,.0f} lines/s while busy)"
        )
    finally:
        adapter.stop()

    port = free_udp_tcp_port()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_RECEIVER, str(port), str(READ_BUFFER)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bare.stdout is not None
        assert bare.stdout.readline().strip() == "ready"
        before_errors = rcvbuf_errors()
        took = send(port, datagrams, total, None)
        counted, first, last = bare.stdout.readline().split()
        errors = rcvbuf_errors() - before_errors
        bare_rate = int(counted) / max(float(last) - float(first), 1e-9)
        print(
            f"saturation (bare receiver): unpaced blast at {total / took:,.0f} lines/s; counted "
            f"{int(counted):,} of {total:,} = {bare_rate:,.0f} lines/s; RcvbufErrors +{errors}"
            + (" (sender-bound: it lost nothing)" if int(counted) == total else "")
        )
    finally:
        if bare.poll() is None:
            bare.send_signal(signal.SIGTERM)
        bare.wait(timeout=10)
    print(f"ratio adapter (lossless rate) / bare receiver: {best / bare_rate:.2f}")
    return best, bare_rate


def memory(series: int, workdir: Path) -> None:
    adapter = start_adapter(workdir / "memory")
    try:
        assert adapter.process is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        batch = []
        for i in range(series):
            batch.append(f"mem.series{i % 100}:1|c|#id:{i}")
            if len(batch) == LINES_PER_DATAGRAM:
                sock.sendto("\n".join(batch).encode(), ("127.0.0.1", adapter.statsd_port))
                batch.clear()
                if i % 2000 == 0:
                    time.sleep(0.005)  # stay well under saturation: this measures memory
        if batch:
            sock.sendto("\n".join(batch).encode(), ("127.0.0.1", adapter.statsd_port))
        wait_flat(adapter)
        live = 0.0
        for line in requests.get(f"{adapter.url}/metrics", timeout=60).text.splitlines():
            if line.startswith("statsd_exporter_series "):
                live = float(line.split()[1])
        with open(f"/proc/{adapter.process.pid}/status") as status:
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        print(f"memory: {live:,.0f} live series, RSS {rss_kb / 1024:.0f} MB")
    finally:
        adapter.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200_000, help="lines/s for the paced run")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--saturation-lines", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="sustained runs (fresh adapter each)")
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument(
        "--steps",
        default="200000,250000,300000,350000,400000,500000,600000,800000",
        help="paced rates (lines/s) tried in order to find the highest lossless one",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/statsd-bench"))
    args = parser.parse_args()
    rmem_max = Path("/proc/sys/net/core/rmem_max").read_text().strip()
    print(f"cores: {os.cpu_count()}, rmem_max: {rmem_max}")
    datagrams = workload()
    for _ in range(args.repeat):
        sustained(datagrams, args.rate, args.seconds, args.workdir)
    rates = [float(r) for r in args.steps.split(",")]
    saturation(datagrams, args.saturation_lines, rates, args.workdir)
    memory(args.series, args.workdir)


if __name__ == "__main__":
    main()
