"""Application JSON/text stats, json_exporter-style (issue 6; in progress)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.metrics.errors import ConfigError
from adapters.metrics.scrape import ScrapeTimeSource


def json_sources(config_paths: Sequence[str]) -> list[ScrapeTimeSource]:
    """The scrape-time sources of every ``--json.config`` file."""
    if config_paths:
        raise ConfigError("--json.config: JSON stats sources are not supported by this build yet")
    return []
