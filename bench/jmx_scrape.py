"""JMX scrape cost against the raw Jolokia bulk read, measured in the same run.

Starts the demo JVM with many synthetic MBeans (>= 1 000 attributes in all), then times, in
alternation, (a) the raw bulk read alone: the same POST the source sends, the body read and
JSON-decoded, and (b) a full ``JmxSource.collect()`` with a 50-rule config (HTTP, JSON,
flattening, rules, families). Prints medians and the ratio b/a (target <= 1.5).

Two JVM modes: "static" values (steady state: every attribute served from the rule cache) and
"moving" values (each read returns new numbers: every attribute goes through the rules).

Usage: .venv/bin/python bench/jmx_scrape.py [--beans 100] [--attributes 12] [--rounds 30]
Needs java, javac and the Debian jars of demo/jmx-app/build.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.metrics.jmx.config import parse_config
from adapters.metrics.jmx.jolokia import read_request
from adapters.metrics.jmx.source import JmxSource
from tests.fixtures.exposition import render
from tests.fixtures.jvm import DemoJvm, build_demo_app
from tests.fixtures.ports import free_port


def fifty_rules(url: str) -> str:
    """A config shaped like real ones: specific rules per bean family (most of them for beans
    this JVM does not have, as in shared Kafka/Cassandra configs), then a catch-all."""
    rules = []
    for k in range(10):  # 10 rules x 10 beans each = the 100 synthetic beans
        rules.append(
            "- pattern: 'demo.bench<type=Synthetic, "
            f"name=bean000{k}(\\d)><>(Counter|Gauge)(\\d+)'\n"
            f"  name: bench_{k}_$2\n  type: GAUGE\n  labels: {{bean: '$1', index: '$3'}}"
        )
    for k in range(30):  # rules for software this JVM does not run
        rules.append(
            f"- pattern: 'kafka.server<type=Broker{k}Metrics, name=(\\w+)PerSec><>Count'\n"
            f"  name: kafka_server_broker{k}_$1_total\n  type: COUNTER"
        )
    rules += [
        "- pattern: 'java.lang<type=Memory><(\\w+)MemoryUsage>(\\w+)'\n"
        "  name: jvm_memory_$2_bytes\n  labels: {area: $1}",
        "- pattern: 'java.lang<type=Threading><>(\\w*ThreadCount)'\n  name: jvm_threads_$1",
        "- pattern: 'java.lang<name=([^,]+), type=GarbageCollector><>Collection(Count|Time)'\n"
        "  name: jvm_gc_collection_$2\n  labels: {gc: $1}",
        "- pattern: 'java.lang<type=ClassLoading><>(\\w+)'\n  name: jvm_classes_$1",
        "- pattern: 'java.lang<type=OperatingSystem><>(\\w+)'\n  name: os_$1",
        "- pattern: 'demo.app<type=Requests, name=(\\w+), zone=(\\w+)><>Count'\n"
        "  name: demo_requests\n  type: COUNTER\n  labels: {endpoint: $1, zone: $2}",
        "- pattern: 'demo.app<type=Requests, name=(\\w+), zone=(\\w+)><>(\\w+)'\n"
        "  name: demo_$3\n  labels: {endpoint: $1, zone: $2}",
        "- pattern: 'demo.app<type=Cache, name=(\\w+)><Stats>(\\w+)'\n"
        "  name: demo_cache_$2\n  labels: {cache: $1}",
        "- pattern: 'demo.app<type=Cache, name=(\\w+), shard=(\\w+)><Shards>(\\w+)'\n"
        "  name: demo_shard_$3\n  labels: {cache: $1, shard: $2}",
        "- pattern: '.*'",
    ]
    assert len(rules) == 50, len(rules)
    return f"jolokiaUrl: {url}\ntimeout: 30\nrules:\n" + "\n".join(rules) + "\n"


async def measure(url: str, rounds: int) -> dict[str, float]:
    config = parse_config(fifty_rules(url))
    source = JmxSource("bench.yml", config)
    raw_client = httpx.AsyncClient(timeout=30, headers={"Content-Type": "application/json"})
    params = {"canonicalNaming": "false", "ignoreErrors": "true", "includeStackTrace": "false"}
    body = json.dumps([read_request(p.query()) for p in config.include]).encode()

    cpu = {"raw": 0.0, "scrape": 0.0}

    async def raw(decode: bool) -> float:
        c = time.process_time()
        t = time.perf_counter()
        r = await raw_client.post(url + "/", content=body, params=params)
        content = await r.aread()
        if decode:
            answer = json.loads(content)
            assert answer[0]["status"] == 200
            cpu["raw"] += time.process_time() - c
        return time.perf_counter() - t

    async def scrape() -> float:
        c = time.process_time()
        t = time.perf_counter()
        await source.collect()
        cpu["scrape"] += time.process_time() - c
        return time.perf_counter() - t

    try:
        t = time.perf_counter()
        families = await source.collect()  # first scrape: lists attribute types, cold caches
        first = time.perf_counter() - t
        text = render(families)
        samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        for _ in range(5):  # warm up both paths (JIT in the JVM, connections)
            await raw(True)
            await scrape()
        cpu["raw"] = cpu["scrape"] = 0.0
        raw_times, raw_json_times, scrape_times = [], [], []
        for _ in range(rounds):
            raw_times.append(await raw(False))
            raw_json_times.append(await raw(True))
            scrape_times.append(await scrape())
        answer = json.loads((await raw_client.post(url + "/", content=body, params=params)).content)
        leaves = sum(len(attrs) for a in answer for attrs in a["value"].values())
    finally:
        await source.close()
        await raw_client.aclose()
    return {
        "attributes": leaves,
        "samples": samples,
        "first_scrape_ms": first * 1000,
        "raw_read_ms": statistics.median(raw_times) * 1000,
        "raw_read_json_ms": statistics.median(raw_json_times) * 1000,
        "scrape_ms": statistics.median(scrape_times) * 1000,
        # This process's CPU per scrape: HTTP client + JSON (raw) vs. everything (scrape).
        # Less sensitive to other load on the machine than wall-clock medians.
        "raw_cpu_ms": cpu["raw"] / rounds * 1000,
        "scrape_cpu_ms": cpu["scrape"] / rounds * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beans", type=int, default=100)
    parser.add_argument("--attributes", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        classes, classpath = build_demo_app(Path(tmp) / "build")
        for mode in ("static", "moving"):
            jvm = DemoJvm(
                "java",
                classes,
                classpath,
                free_port(),
                Path(tmp) / f"jvm-{mode}.log",
                (
                    "--synthetic-beans",
                    str(args.beans),
                    "--synthetic-attributes",
                    str(args.attributes),
                    "--synthetic-moving",
                    str(mode == "moving").lower(),
                ),
            )
            jvm.start()
            try:
                r = asyncio.run(measure(jvm.url, args.rounds))
            finally:
                jvm.stop()
            print(
                f"{mode:6} values: {r['attributes']:.0f} attributes, {r['samples']:.0f} samples,"
                f" 50 rules | raw bulk read {r['raw_read_ms']:.1f} ms"
                f" (+JSON decode {r['raw_read_json_ms']:.1f} ms) | scrape {r['scrape_ms']:.1f} ms"
                f" | ratio {r['scrape_ms'] / r['raw_read_ms']:.2f}x raw,"
                f" {r['scrape_ms'] / r['raw_read_json_ms']:.2f}x raw+JSON"
                f" | first scrape {r['first_scrape_ms']:.1f} ms"
                f" | adapter CPU per scrape {r['scrape_cpu_ms']:.1f} ms"
                f" (raw read + JSON {r['raw_cpu_ms']:.1f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
