"""JMX via Jolokia, with jmx_exporter-compatible rules.

Pipeline, one module per stage: ``config`` (the jmx_exporter YAML + ``jolokiaUrl``) ->
``jolokia`` (one bulk HTTP read per scrape) -> ``objectname`` / ``flatten`` (beans and
attribute values into jmx_exporter's match strings) -> ``rules`` (the rule engine and its
caches) -> ``families`` (Prometheus metric families); ``source`` wires them per JVM and
``merge`` puts several JVMs into one exposition.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from adapters.metrics.errors import ConfigError
from adapters.metrics.jmx.config import load_config
from adapters.metrics.jmx.merge import MergedJmxSources
from adapters.metrics.jmx.source import JmxSource
from adapters.metrics.scrape import ScrapeTimeSource


def jmx_sources(config_paths: Sequence[str]) -> list[ScrapeTimeSource]:
    """The scrape-time source for the ``--jmx.config`` files: one JVM per file; several JVMs are
    merged into one source that labels their series (see :mod:`.merge`). Raises ConfigError
    for a bad file or two files with the same target name."""
    loaded = [(path, load_config(path)) for path in config_paths]
    if len(loaded) <= 1:
        return [JmxSource(path, config) for path, config in loaded]
    targets: dict[str, str] = {}
    for path, config in loaded:
        target = config.target_name or os.path.splitext(os.path.basename(path))[0]
        if target in targets:
            raise ConfigError(
                f"--jmx.config {path}: target name {target!r} is also used by {targets[target]}; "
                "set targetName in one of them"
            )
        targets[target] = path
    return [
        MergedJmxSources([(t, JmxSource(p, c)) for t, (p, c) in zip(targets, loaded, strict=True)])
    ]
