"""Prometheus series of the ambassador, in a registry of its own (no default process collectors
mixed in by accident from imported libraries)."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterator
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0)
_bucket_of = partial(bisect_left, _BUCKETS)  # the bucket a latency is counted in ("le" bounds)
# Latencies of single replies are collected in a list and put into buckets this many at a
# time: an append costs the hot path a fraction of a bucket update done there, and folding a
# batch is all C (``map`` of ``bisect`` into a ``Counter``); small batches keep each fold
# short (~0.1 ms), so it never holds up the replies behind it.
FOLD_AT = 1024


class RouteStats:
    """The counters of one route (the role of the node that answered, or ``local``/``error``):
    plain attributes, updated on the forwarding hot path. Single-threaded writers (the event
    loop), so no lock; a scrape reads a consistent-enough snapshot."""

    __slots__ = ("buckets", "errors", "latencies", "ok", "seconds")

    def __init__(self) -> None:
        self.ok = 0
        self.errors = 0
        self.buckets = [0] * (len(_BUCKETS) + 1)  # the last one: above every bound
        self.seconds = 0.0
        # Successful single replies not counted yet: their latencies (see FOLD_AT). The list
        # is emptied in place, never replaced, so the hot path may keep a reference to it.
        self.latencies: list[float] = []

    def fold(self) -> None:
        """Count the collected latencies into ``ok`` and the buckets."""
        latencies = self.latencies
        if latencies:
            self.ok += len(latencies)
            self.seconds += sum(latencies)
            buckets = self.buckets
            for bucket, count in Tally(map(_bucket_of, latencies)).items():
                buckets[bucket] += count
            latencies.clear()

    def observe(self, seconds: float, count: int = 1, error: bool = False) -> None:
        """``count`` replies (one piece of a pipeline), each ``seconds`` after its command."""
        if error:
            self.errors += count
        else:
            self.ok += count
        self.buckets[bisect_left(_BUCKETS, seconds)] += count
        self.seconds += seconds * count

    def count(self, error: bool) -> None:
        """A reply with no latency to speak of (answered by the ambassador itself)."""
        if error:
            self.errors += 1
        else:
            self.ok += 1


class CommandStats(Collector):
    """Per-command counters by route, turned into Prometheus series at scrape time.

    Counting is on the forwarding hot path; prometheus-client's labelled metrics take a lock
    and several calls per update, which costs more than a ``RouteStats``."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteStats] = {}

    def route(self, name: str) -> RouteStats:
        stats = self.routes.get(name)
        if stats is None:
            stats = self.routes[name] = RouteStats()
        return stats

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        commands = CounterMetricFamily(
            "redis_ambassador_commands",
            "Commands handled, by the node role that served them and the reply kind.",
            labels=["route", "result"],
        )
        routes = sorted(self.routes.items())
        for route, stats in routes:
            stats.fold()  # (latencies collected since the last fold count towards every series)
            if stats.errors:
                commands.add_metric([route, "error"], stats.errors)
            if stats.ok:
                commands.add_metric([route, "ok"], stats.ok)
        yield commands
        latency = HistogramMetricFamily(
            "redis_ambassador_command_duration_seconds",
            "Time from a command being forwarded to its reply being read, by route.",
            labels=["route"],
        )
        for route, stats in routes:
            if not any(stats.buckets):
                continue  # no latency observed: answered by the ambassador itself
            cumulative = 0
            points = []
            for bound, count in zip((*_BUCKETS, float("inf")), stats.buckets, strict=True):
                cumulative += count
                points.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric([route], points, sum_value=stats.seconds)
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
