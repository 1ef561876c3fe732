"""The StatsD hot path without sockets: the workload of ``statsd_ingest.py`` fed straight into
``Ingester.datagrams`` in batches, as the UDP listener hands them over; prints CPU ns per line.

    .venv/bin/python bench/statsd_ingest_inproc.py [--batch 8] [--rounds 7] [--profile]

CPU time (``process_time``), median of the rounds, so that other jobs on a shared machine skew
it less than wall-clock figures; ``--profile`` prints cProfile's top functions for one round.

Even CPU time moves by a third from run to run when the machine is busy. To compare two versions
of the hot path, count instructions instead, which do not move: run this under
``valgrind --tool=callgrind --callgrind-out-file=/dev/null`` with ``--rounds 1`` and with
``--rounds 3``; the difference of the two "Collected" totals over 800,000 lines is the cost of
a line (about 4,300 instructions before the ``partition`` rewrite, 3,650 after).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.metrics.ingest import Ingester  # noqa: E402
from adapters.metrics.mapping import Mapper, MappingConfig  # noqa: E402
from adapters.metrics.parse import LineParser  # noqa: E402
from adapters.metrics.registry import Registry  # noqa: E402
from adapters.metrics.telemetry import Telemetry  # noqa: E402
from bench.statsd_ingest import LINES_PER_DATAGRAM, workload  # noqa: E402


def build() -> Ingester:
    """An ingester as the service builds it with default flags and no mapping file."""
    telemetry = Telemetry()
    return Ingester(
        LineParser(telemetry), Mapper(MappingConfig(), telemetry), Registry(telemetry), telemetry
    )


def feed(ingester: Ingester, datagrams: list[bytes], batch: int) -> None:
    apply = ingester.datagrams
    for i in range(0, len(datagrams), batch):
        apply(datagrams[i : i + batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="datagrams per listener wakeup")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    datagrams = workload()
    lines = len(datagrams) * LINES_PER_DATAGRAM
    ingester = build()
    feed(ingester, datagrams, args.batch)  # first sight of every shape: the slow path
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(feed, ingester, datagrams, args.batch)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    took = []
    for _ in range(args.rounds):
        began = time.process_time()
        feed(ingester, datagrams, args.batch)
        took.append(time.process_time() - began)
    print(
        f"{lines:,} lines per round, batches of {args.batch} datagrams: "
        f"median {statistics.median(took) / lines * 1e9:.0f} ns CPU/line, "
        f"best {min(took) / lines * 1e9:.0f}"
    )


if __name__ == "__main__":
    main()
