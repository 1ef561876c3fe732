"""Prometheus series of the ambassador, in a registry of its own (no default process collectors
mixed in by accident from imported libraries)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0)


class CommandStats(Collector):
    """Per-command counters as plain integers, turned into Prometheus series at scrape time.

    Counting is on the forwarding hot path; prometheus-client's labelled metrics take a lock
    and several calls per update, which costs more than this. Single-threaded (the event loop)
    writers, so no lock is needed; a scrape reads a consistent-enough snapshot."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def record(self, route: str, result: str, seconds: float | None) -> None:
        key = (route, result)
        self.counts[key] = self.counts.get(key, 0) + 1
        if seconds is None:
            return
        buckets = self.buckets.get(route)
        if buckets is None:
            buckets = self.buckets[route] = [0] * (len(_BUCKETS) + 1)
            self.sums[route] = 0.0
        buckets[bisect_left(_BUCKETS, seconds)] += 1
        self.sums[route] += seconds

    def record_many(self, route: str, result: str, seconds: float, count: int) -> None:
        """``count`` commands answered together (one piece of a pipeline), each taking
        ``seconds``."""
        key = (route, result)
        self.counts[key] = self.counts.get(key, 0) + count
        buckets = self.buckets.get(route)
        if buckets is None:
            buckets = self.buckets[route] = [0] * (len(_BUCKETS) + 1)
            self.sums[route] = 0.0
        buckets[bisect_left(_BUCKETS, seconds)] += count
        self.sums[route] += seconds * count

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        commands = CounterMetricFamily(
            "redis_ambassador_commands",
            "Commands handled, by the node role that served them and the reply kind.",
            labels=["route", "result"],
        )
        for (route, result), count in sorted(self.counts.items()):
            commands.add_metric([route, result], count)
        yield commands
        latency = HistogramMetricFamily(
            "redis_ambassador_command_duration_seconds",
            "Time from a command being forwarded to its reply being read, by route.",
            labels=["route"],
        )
        for route, counts in sorted(self.buckets.items()):
            cumulative = 0
            points = []
            for bound, count in zip((*_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                points.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric([route], points, sum_value=self.sums[route])
        yield latency


COMMAND_STATS = CommandStats()
REGISTRY.register(COMMAND_STATS)
UPSTREAM_UP = Gauge(
    "redis_ambassador_upstream_up",
    "1 when the node answers health checks and passes the lag gate.",
    ["node", "role"],
    registry=REGISTRY,
)
REPLICA_LAG_BYTES = Gauge(
    "redis_ambassador_replica_lag_bytes",
    "Master replication offset minus the replica's, at the last health check.",
    ["node"],
    registry=REGISTRY,
)
REPLICA_LAG_SECONDS = Gauge(
    "redis_ambassador_replica_lag_seconds",
    "How long ago the master had the offset the replica has reached.",
    ["node"],
    registry=REGISTRY,
)
CLIENTS = Gauge("redis_ambassador_connected_clients", "Client connections open.", registry=REGISTRY)
REJECTED_CLIENTS = Counter(
    "redis_ambassador_rejected_clients",
    "Client connections refused (max clients) or closed for a protocol error.",
    ["reason"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "redis_ambassador_retries",
    "Commands re-sent to another node (replica lost, NOSCRIPT, READONLY after failover).",
    ["reason"],
    registry=REGISTRY,
)
FAILOVERS = Counter(
    "redis_ambassador_master_changes",
    "Times the master address changed (Sentinel +switch-master or re-resolution).",
    registry=REGISTRY,
)
