"""StatsD ingest benchmark: how many lines/s the adapter turns into series, against a bare Python
UDP receiver measured in the same run.

    .venv/bin/python bench/statsd_ingest.py [--rate 200000] [--seconds 5] [--series 100000]

1. Sustained: while /metrics is scraped once a second, a paced sender sends
   ``rate * seconds`` lines (c, g, ms and DogStatsD-tagged lines over ~1000 names, 20 lines per
   datagram) to an adapter started with ``--statsd.read-buffer=4194304``; then polls the
   adapter's own ``statsd_exporter_lines_total`` until it stops moving and reports lines
   processed/lost and the kernel's UDP RcvbufErrors.
2. Saturation: paced runs at rising rates find the highest rate the adapter keeps up with (loss
   under 0.1 %). Then the adapter and a bare receiver (a Python process that only reads
   datagrams and counts lines, with the same socket buffer) are measured the same two ways:
   a. the same unpaced sender for the same time: lines/s processed, whether the kernel dropped
      (receiver-bound) or not (sender-bound: then the figure is the sender's, not the
      receiver's), and the receiver's CPU per line;
   b. drain: the receiver is stopped (SIGSTOP), its socket buffer filled until the kernel drops,
      and the time it takes to empty it once resumed gives its ceiling with no sender competing
      for the two cores. The ratio of the two ceilings is the headline ratio.
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
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.statsd_adapter import Adapter, free_udp_tcp_port  # noqa: E402

LINES_PER_DATAGRAM = 20
READ_BUFFER = 4 * 1024 * 1024

# The reference: a Python process that only reads datagrams and counts their lines. It runs until
# the bench stops it; SIGUSR1 makes it print how many lines it has counted so far (a blocking
# recv is resumed after the handler, so the loop itself stays a bare recv + count).
BARE_RECEIVER = textwrap.dedent(
    """
    import signal, socket, sys
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(sys.argv[2]))
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    lines = 0
    signal.signal(signal.SIGUSR1, lambda signum, frame: print(lines, flush=True))
    print("ready", flush=True)
    recv = sock.recv
    while True:
        lines += recv(65535).count(b"\\n") + 1
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


class Receiver:
    """Either receiver under test, seen from outside the same way: a process, a UDP port, and
    how many lines it has processed so far."""

    def __init__(self, name: str, pid: int, port: int, processed: Callable[[], float]) -> None:
        self.name = name
        self.pid = pid
        self.port = port
        self.processed = processed


def adapter_receiver(adapter: Adapter) -> Receiver:
    assert adapter.process is not None
    return Receiver(
        "adapter", adapter.process.pid, adapter.statsd_port, lambda: lines_total(adapter)
    )


def bare_receiver(process: subprocess.Popen[str], port: int) -> Receiver:
    def processed() -> float:
        assert process.stdout is not None
        process.send_signal(signal.SIGUSR1)
        return float(process.stdout.readline())

    return Receiver("bare receiver", process.pid, port, processed)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rx_queue(port: int) -> int:
    """Bytes waiting in the receive queue of the IPv4 UDP socket bound to 127.0.0.1:port."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        for row in table:
            fields = row.split()
            if len(fields) > 4 and fields[1] == local:
                return int(fields[4].split(":")[1], 16)
    raise RuntimeError(f"no UDP socket on 127.0.0.1:{port}")


def wait_processed_flat(receiver: Receiver, idle: float = 0.5, limit: float = 60.0) -> float:
    """Poll the receiver's line count until it stops moving (at most ``limit`` seconds)."""
    last = receiver.processed()
    moved = began = time.monotonic()
    while time.monotonic() - moved < idle and time.monotonic() - began < limit:
        time.sleep(0.1)
        value = receiver.processed()
        if value != last:
            last, moved = value, time.monotonic()
    return last


def drain(receiver: Receiver, datagrams: list[bytes], rounds: int) -> tuple[float, float, int]:
    """The receiver's ceiling with no sender competing for the CPU: stop it (SIGSTOP), fill its
    socket buffer until the kernel starts dropping, let it go (SIGCONT) and time until the
    receive queue is empty. Returns the median lines/s over ``rounds``, the receiver's CPU
    seconds per line over all rounds (less sensitive than wall time to other jobs on the
    machine), and the lines per round.

    The time ends when the last datagram has been *read*; the adapter may still be applying its
    last batch (at most 64 datagrams, ~1 ms), so its figure is slightly flattering."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", receiver.port)
    rates, queued_lines = [], 0
    cpu = lines = 0.0
    for _ in range(rounds):
        base = receiver.processed()
        os.kill(receiver.pid, signal.SIGSTOP)
        try:
            dropped_before = rcvbuf_errors()
            sent = 0
            # Bounded: 20 000 datagrams is several times what a 4 MiB buffer holds.
            while sent < 20000 and rcvbuf_errors() == dropped_before:
                for datagram in datagrams[sent : sent + 100]:
                    sock.sendto(datagram, target)
                sent += 100
            queued = sent - (rcvbuf_errors() - dropped_before)
            queued_lines = queued * LINES_PER_DATAGRAM
            cpu_before = cpu_seconds(receiver.pid)
            began = time.monotonic()
        finally:
            os.kill(receiver.pid, signal.SIGCONT)
        deadline = began + 30
        while rx_queue(receiver.port) and time.monotonic() < deadline:
            time.sleep(0.0002)
        took = time.monotonic() - began
        time.sleep(0.05)  # the adapter's last batch, read but maybe not yet applied
        cpu += cpu_seconds(receiver.pid) - cpu_before  # before the polling below adds its own
        processed = wait_processed_flat(receiver) - base
        lines += processed
        if processed != queued_lines:
            print(f"  ({receiver.name} drain: {processed:,.0f} lines of {queued_lines:,} queued)")
        rates.append(processed / took)
    sock.close()
    return statistics.median(rates), cpu / max(lines, 1), queued_lines


def blast(receiver: Receiver, datagrams: list[bytes], seconds: float) -> float:
    """The same unpaced sender for ``seconds``; prints what the receiver made of it and returns
    the lines/s it processed."""
    base = receiver.processed()
    dropped_before = rcvbuf_errors()
    cpu_before = cpu_seconds(receiver.pid)
    total = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sendto, target, n = sock.sendto, ("127.0.0.1", receiver.port), len(datagrams)
    began = time.monotonic()
    end = began + seconds
    while time.monotonic() < end:
        for i in range(total % n, total % n + 200):
            sendto(datagrams[i % n], target)
        total += 200
    took = time.monotonic() - began
    sock.close()
    processed = wait_processed_flat(receiver) - base
    cpu = cpu_seconds(receiver.pid) - cpu_before
    lines = total * LINES_PER_DATAGRAM
    dropped = rcvbuf_errors() - dropped_before
    bound = "receiver-bound (kernel dropped)" if dropped else "sender-bound (nothing dropped)"
    print(
        f"  blast to {receiver.name}: sent {lines:,} lines in {took:.2f}s "
        f"({lines / took:,.0f} lines/s); processed {processed:,.0f} = {processed / took:,.0f} "
        f"lines/s; RcvbufErrors +{dropped}: {bound}; receiver CPU "
        f"{cpu / max(processed, 1) * 1e6:.2f} us/line; load average {load_average()}"
    )
    return processed / took


def start_bare() -> tuple[subprocess.Popen[str], int]:
    port = free_udp_tcp_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_RECEIVER, str(port), str(READ_BUFFER)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("bare receiver did not start")
    return process, port


def highest_lossless(adapter: Adapter, datagrams: list[bytes], rates: list[float]) -> float:
    """The highest paced rate the adapter keeps up with (loss under 0.1 %)."""
    best = 0.0
    for rate in rates:
        before_errors = rcvbuf_errors()
        loss, achieved = paced_loss(adapter, datagrams, rate, 3.0)
        errors = rcvbuf_errors() - before_errors
        print(
            f"  paced {rate:,.0f} lines/s for 3 s (sender achieved {achieved:,.0f}): "
            f"lost {loss:.2%}, RcvbufErrors +{errors}; load average {load_average()}"
        )
        if loss >= 0.001 or achieved < rate * 0.97:
            break  # lossy, or the sender itself cannot go faster: no point going higher
        best = rate
    return best


def saturation(
    datagrams: list[bytes], rates: list[float], seconds: float, rounds: int, workdir: Path
) -> None:
    """Paced steps (the issue's saturation figure), then the adapter and the bare receiver
    measured identically: the same unpaced sender for the same time, and each one draining the
    same full socket buffer on its own (its ceiling, whatever the sender manages)."""
    adapter = start_adapter(workdir / "saturation")
    bare, bare_port = start_bare()
    try:
        best = highest_lossless(adapter, datagrams, rates)
        print(f"saturation (adapter): highest lossless paced rate {best:,.0f} lines/s")
        receivers = [adapter_receiver(adapter), bare_receiver(bare, bare_port)]
        blasts = {r.name: blast(r, datagrams, seconds) for r in receivers}
        drains = {}
        for receiver in receivers:
            rate, cpu, queued = drain(receiver, datagrams, rounds)
            drains[receiver.name] = rate
            print(
                f"  drain ({receiver.name}): a full {READ_BUFFER // 1024 // 1024} MiB socket "
                f"buffer ({queued:,} lines) read at {rate:,.0f} lines/s "
                f"(median of {rounds}), CPU {cpu * 1e6:.2f} us/line; load average {load_average()}"
            )
    finally:
        adapter.stop()
        bare.terminate()
        bare.wait(timeout=10)
    print(
        f"ratio adapter / bare receiver, ceilings (drain, no sender running): "
        f"{drains['adapter'] / drains['bare receiver']:.2f} "
        f"({drains['adapter']:,.0f} / {drains['bare receiver']:,.0f} lines/s)"
    )
    print(
        f"ratio adapter / bare receiver, same sender for {seconds:.0f} s: "
        f"{blasts['adapter'] / blasts['bare receiver']:.2f} "
        f"({blasts['adapter']:,.0f} / {blasts['bare receiver']:,.0f} lines/s; where the bare "
        f"receiver was sender-bound this overstates the adapter)"
    )


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
    parser.add_argument("--blast-seconds", type=float, default=3.0)
    parser.add_argument("--drain-rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="sustained runs (fresh adapter each)")
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument(
        "--steps",
        default="200000,250000,300000,400000,500000,600000,800000,1000000,1200000,1500000",
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
    saturation(datagrams, rates, args.blast_seconds, args.drain_rounds, args.workdir)
    memory(args.series, args.workdir)


if __name__ == "__main__":
    main()
