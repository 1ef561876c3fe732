"""JMX via Jolokia, with jmx_exporter-compatible rules.

Pipeline, one module per stage: ``config`` (the jmx_exporter YAML + ``jolokiaUrl``) ->
``jolokia`` (one bulk HTTP read per scrape) -> ``objectname`` / ``flatten`` (beans and
attribute values into jmx_exporter's match strings) -> ``rules`` (the rule engine and its
caches) -> ``families`` (Prometheus metric families); ``source`` wires them per JVM.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.metrics.jmx.config import load_config
from adapters.metrics.jmx.source import JmxSource
from adapters.metrics.scrape import ScrapeTimeSource


def jmx_sources(config_paths: Sequence[str]) -> list[ScrapeTimeSource]:
    """One scrape-time source per ``--jmx.config`` file. Raises ConfigError for a bad file."""
    return [JmxSource(path, load_config(path)) for path in config_paths]
