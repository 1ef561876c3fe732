"""Prometheus series of the ambassador, in a registry of its own (no default process collectors
mixed in by accident from imported libraries)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Counter(
    "redis_ambassador_commands",
    "Commands handled, by the node role that served them and the reply kind.",
    ["route", "result"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "redis_ambassador_command_duration_seconds",
    "Time from a command being forwarded to its reply being read, by route.",
    ["route"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
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
