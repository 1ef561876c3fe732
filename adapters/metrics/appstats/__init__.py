"""Application stats (JSON, nginx stub_status, Redis INFO), json_exporter-style.

Pipeline, one module per stage: ``config`` (targets + json_exporter modules) -> ``fetch``
(HTTP GET or Redis INFO) -> ``formats`` (body -> JSON document) -> ``jsonpath`` / ``extract``
(rules -> samples) -> ``source`` (families and per-target scrape metrics).
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.metrics.appstats.config import load_targets
from adapters.metrics.appstats.source import AppStatsSource
from adapters.metrics.errors import ConfigError
from adapters.metrics.scrape import ScrapeTimeSource


def json_sources(config_paths: Sequence[str]) -> list[ScrapeTimeSource]:
    """One source for the targets of every ``--json.config`` file (their series share one
    exposition, so they are merged in one place). Raises ConfigError for a bad file."""
    targets = []
    names: dict[str, str] = {}
    for path in config_paths:
        for target in load_targets(path):
            if target.name in names:
                raise ConfigError(
                    f"--json.config {path}: target name {target.name!r} is also used in "
                    f"{names[target.name]}"
                )
            names[target.name] = path
            targets.append(target)
    return [AppStatsSource(targets)] if targets else []
