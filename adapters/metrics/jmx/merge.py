"""Several JVMs (repeated ``--jmx.config``) in one exposition.

Each JVM's families would clash with the others' (the same ``jmx_scrape_error``, the same JVM
metric names), and a text exposition may hold each family name once. So with more than one JVM,
every sample gets a ``jmx_target`` label (the config's ``targetName``, else the file name
without extension) and families of the same name are merged. With one JVM the output is exactly
jmx_exporter's.
"""

from __future__ import annotations

import asyncio

from prometheus_client.metrics_core import Metric

from adapters.metrics.jmx.source import JmxSource


class MergedJmxSources:
    """A :class:`~adapters.metrics.scrape.ScrapeTimeSource` over several JMX sources."""

    def __init__(self, sources: list[tuple[str, JmxSource]]) -> None:
        self._sources = sources

    @property
    def name(self) -> str:
        return "jmx:" + ",".join(target for target, _ in self._sources)

    async def collect(self) -> list[Metric]:
        results = await asyncio.gather(*(s.collect() for _, s in self._sources))
        merged: dict[str, Metric] = {}
        for (target, _), families in zip(self._sources, results, strict=True):
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                elif into.type != family.type:
                    into.type = "unknown"
                for sample in family.samples:
                    labels = {**sample.labels, "jmx_target": target}
                    into.add_sample(sample.name, labels, sample.value, sample.timestamp)
        return list(merged.values())

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for _, s in self._sources))
