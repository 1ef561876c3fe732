"""JMX via Jolokia, with jmx_exporter-compatible rules (issue 6; in progress)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.metrics.errors import ConfigError
from adapters.metrics.scrape import ScrapeTimeSource


def jmx_sources(config_paths: Sequence[str]) -> list[ScrapeTimeSource]:
    """One scrape-time source per ``--jmx.config`` file."""
    if config_paths:
        raise ConfigError("--jmx.config: JMX sources are not supported by this build yet")
    return []
