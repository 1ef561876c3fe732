"""The Prometheus series, with upstream's names so existing dashboards and alerts keep working."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Summary
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

SUCCESS, ERROR, NOOP = "success", "error", "noop"

sync_duration = Summary("git_sync_duration_seconds", "Summary of git_sync durations", ["status"])
sync_count = Counter(
    "git_sync_count",
    "How many git syncs completed, partitioned by state (success, error, noop)",
    ["status"],
)
fetch_count = Counter("git_fetch_count", "How many git fetches were run")
hook_run_count = Counter(
    "git_sync_hook_run_count",
    "How many hook runs completed, partitioned by name and state",
    ["name", "status"],
)
# Ours, beyond upstream.
trigger_requests = Counter(
    "git_sync_trigger_requests",
    "Push-trigger requests received on POST /sync, partitioned by status (accepted, unauthorized)",
    ["status"],
)
verify_failures = Counter(
    "git_sync_verify_failures",
    "Commits refused because their signature was missing or not trusted",
)


class _UpstreamCounter(Collector):
    """Upstream names some counters without the ``_total`` suffix. prometheus-client adds that
    suffix to every counter (even in the TYPE line), so these are exposed untyped, with the
    exact upstream sample name that queries and alerts use."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.counts = {SUCCESS: 0.0, ERROR: 0.0}

    def inc(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0.0) + 1

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "unknown")
        for status, value in self.counts.items():
            metric.add_sample(self.name, {"status": status}, value)
        yield metric


askpass_calls = _UpstreamCounter(
    "git_sync_askpass_calls",
    "How many git askpass calls completed, partitioned by state (success, error)",
)
github_app_refreshes = _UpstreamCounter(
    "git_sync_refresh_github_app_token_count",
    "How many times the GitHub app token was refreshed, partitioned by state (success, error)",
)
REGISTRY.register(askpass_calls)
REGISTRY.register(github_app_refreshes)


def observe_sync(status: str, seconds: float) -> None:
    sync_duration.labels(status).observe(seconds)
    sync_count.labels(status).inc()
