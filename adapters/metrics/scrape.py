"""Scrape-time sources: metrics read when Prometheus scrapes, not pushed to us.

StatsD events are pushed into the registry as they arrive. JMX (via Jolokia) and application JSON
stats are pulled: on each ``/metrics`` request the exposition awaits ``collect()`` of every
scrape-time source, concurrently, and appends the families they return to the registry's output.
A source that fails must not fail the scrape: it reports its own error metric instead (e.g.
``jmx_scrape_error 1``) and returns what it has.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client.metrics_core import Metric


class ScrapeTimeSource(Protocol):
    """One pulled source (one JVM, one JSON stats endpoint)."""

    @property
    def name(self) -> str:
        """A short name for logs, e.g. the config file or target it came from."""
        ...

    async def collect(self) -> list[Metric]:
        """Read the source now and return complete metric families. Never raises for a source
        that is down or returns garbage; bounded by the source's own timeout."""
        ...

    async def close(self) -> None:
        """Release connections (called once at shutdown)."""
        ...
