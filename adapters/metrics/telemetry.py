"""The adapter's own counters, under statsd_exporter's metric names.

They are plain ints and dicts, not prometheus-client metrics: the hot path bumps them millions of
times a second and a prometheus-client ``inc()`` takes a lock each time. They become metric
families only when ``/metrics`` is scraped (``families_text``).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

try:
    _VERSION = version("podpatterns")
except PackageNotFoundError:  # running from a source tree that was never installed
    _VERSION = "unknown"
_PYTHON = platform.python_version()


@dataclass
class Telemetry:
    lines: int = 0
    samples: int = 0
    sample_errors: dict[str, int] = field(default_factory=dict)
    tags: int = 0
    tag_errors: int = 0
    events: dict[str, int] = field(default_factory=dict)
    events_unmapped: int = 0
    events_conflict: dict[str, int] = field(default_factory=dict)
    events_error: dict[str, int] = field(default_factory=dict)
    events_actions: dict[str, int] = field(default_factory=dict)
    udp_packets: int = 0
    unixgram_packets: int = 0
    tcp_connections: int = 0
    tcp_errors: int = 0
    tcp_too_long_lines: int = 0
    config_reloads: dict[str, int] = field(default_factory=lambda: {"success": 0, "failure": 0})
    loaded_mappings: int = 0
    mapper_cache_gets: int = 0
    mapper_cache_hits: int = 0
    mapper_cache_length: int = 0
    relay_lines: int = 0
    relay_errors: int = 0
    # Families created, by exposed type. Upstream only ever increments it, so it is exposed as
    # the counter it is (upstream's TYPE says gauge, which promtool rejects for a _total name).
    metrics: dict[str, int] = field(default_factory=dict)
    # Ours, beyond upstream: the cardinality guard (--statsd.max-series).
    series_dropped: dict[str, int] = field(default_factory=dict)

    # The sum of sample_errors, so the ingest stage can tell cheaply whether a line was clean.
    sample_error_count: int = 0

    def sample_error(self, reason: str) -> None:
        self.sample_errors[reason] = self.sample_errors.get(reason, 0) + 1
        self.sample_error_count += 1

    def event_error(self, reason: str, count: int = 1) -> None:
        self.events_error[reason] = self.events_error.get(reason, 0) + count

    def conflict(self, kind: str) -> None:
        self.events_conflict[kind] = self.events_conflict.get(kind, 0) + 1

    def dropped(self, reason: str) -> None:
        self.series_dropped[reason] = self.series_dropped.get(reason, 0) + 1

    def families(self, live_series: int) -> Iterator[str]:
        """Exposition text, one metric family per yielded string."""
        yield (
            "# HELP statsd_exporter_build_info A metric with a constant '1' value labeled by "
            "version and the Python version it runs on.\n"
            "# TYPE statsd_exporter_build_info gauge\n"
            f'statsd_exporter_build_info{{pythonversion="{_PYTHON}",version="{_VERSION}"}} 1\n'
        )
        yield _counter(
            "statsd_exporter_lines_total", "The total number of StatsD lines received.", self.lines
        )
        yield _counter(
            "statsd_exporter_samples_total",
            "The total number of StatsD samples received.",
            self.samples,
        )
        yield _labelled(
            "statsd_exporter_sample_errors_total",
            "The total number of errors parsing StatsD samples.",
            "counter",
            "reason",
            self.sample_errors,
        )
        yield _counter(
            "statsd_exporter_tags_total", "The total number of DogStatsD tags processed.", self.tags
        )
        yield _counter(
            "statsd_exporter_tag_errors_total",
            "The number of errors parsing DogStatsD tags.",
            self.tag_errors,
        )
        yield _labelled(
            "statsd_exporter_events_total",
            "The total number of StatsD events seen.",
            "counter",
            "type",
            self.events,
        )
        yield _counter(
            "statsd_exporter_events_unmapped_total",
            "The total number of StatsD events no mapping was found for.",
            self.events_unmapped,
        )
        yield _labelled(
            "statsd_exporter_events_conflict_total",
            "The total number of StatsD events with conflicting names.",
            "counter",
            "type",
            self.events_conflict,
        )
        yield _labelled(
            "statsd_exporter_events_error_total",
            "The total number of StatsD events discarded due to errors.",
            "counter",
            "reason",
            self.events_error,
        )
        yield _labelled(
            "statsd_exporter_events_actions_total",
            "The total number of StatsD events by action.",
            "counter",
            "action",
            self.events_actions,
        )
        yield _counter(
            "statsd_exporter_udp_packets_total",
            "The total number of StatsD packets received over UDP.",
            self.udp_packets,
        )
        yield _counter(
            "statsd_exporter_unixgram_packets_total",
            "The total number of StatsD packets received over Unixgram.",
            self.unixgram_packets,
        )
        yield _counter(
            "statsd_exporter_tcp_connections_total",
            "The total number of TCP connections handled.",
            self.tcp_connections,
        )
        yield _counter(
            "statsd_exporter_tcp_connection_errors_total",
            "The number of errors encountered reading from TCP.",
            self.tcp_errors,
        )
        yield _counter(
            "statsd_exporter_tcp_too_long_lines_total",
            "The number of lines discarded due to being too long.",
            self.tcp_too_long_lines,
        )
        yield _labelled(
            "statsd_exporter_config_reloads_total",
            "The number of configuration reloads.",
            "counter",
            "outcome",
            self.config_reloads,
        )
        yield _gauge(
            "statsd_exporter_loaded_mappings",
            "The current number of configured metric mappings.",
            self.loaded_mappings,
        )
        yield _labelled(
            "statsd_exporter_metrics_total",
            "The total number of metrics.",
            "counter",
            "type",
            self.metrics,
        )
        yield _counter(
            "statsd_metric_mapper_cache_gets_total",
            "The count of total metric cache gets.",
            self.mapper_cache_gets,
        )
        yield _counter(
            "statsd_metric_mapper_cache_hits_total",
            "The count of total metric cache hits.",
            self.mapper_cache_hits,
        )
        yield _gauge(
            "statsd_metric_mapper_cache_length",
            "The count of unique metrics currently cached.",
            self.mapper_cache_length,
        )
        yield _counter(
            "statsd_exporter_relay_lines_relayed_total",
            "The number of lines relayed.",
            self.relay_lines,
        )
        yield _counter(
            "statsd_exporter_relay_errors_total",
            "The number of errors sending relayed lines.",
            self.relay_errors,
        )
        yield _gauge(
            "statsd_exporter_series",
            "The number of live series built from StatsD events (ours).",
            live_series,
        )
        yield _labelled(
            "statsd_exporter_series_dropped_total",
            "New series dropped by the cardinality guard, by limit (ours).",
            "counter",
            "reason",
            self.series_dropped,
        )


def _counter(name: str, help_text: str, value: int) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} counter\n{name} {value}\n"


def _gauge(name: str, help_text: str, value: int) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} gauge\n{name} {value}\n"


def _labelled(name: str, help_text: str, kind: str, label: str, values: dict[str, int]) -> str:
    lines = [f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"]
    for key in sorted(values):
        lines.append(f'{name}{{{label}="{key}"}} {values[key]}\n')
    return "".join(lines)


# Every name above, so that a StatsD metric cannot shadow one of ours (upstream's registry refuses
# those too: registering a second collector under the same name fails).
RESERVED_PREFIXES = ("statsd_exporter_", "statsd_metric_mapper_")
