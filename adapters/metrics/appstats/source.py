"""All ``--json.config`` targets as one scrape-time source: fetch every target concurrently,
parse its body, extract the samples, merge them into families, and add our own
``appstats_scrape_error`` / ``appstats_scrape_duration_seconds`` per target. A target that is
down or answers garbage sets its error to 1; the others are unaffected."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from prometheus_client.metrics_core import Metric

from adapters.metrics.appstats.config import Target
from adapters.metrics.appstats.extract import Sample, extract
from adapters.metrics.appstats.fetch import Fetcher, FetchError
from adapters.metrics.appstats.formats import FormatError, parse

log = logging.getLogger(__name__)


class AppStatsSource:
    def __init__(
        self, targets: list[Target], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._targets = targets
        self._fetcher = Fetcher(transport)

    @property
    def name(self) -> str:
        return "json:" + ",".join(t.name for t in self._targets)

    async def close(self) -> None:
        await self._fetcher.close()

    async def _one(self, target: Target) -> tuple[list[Sample], float, float]:
        start = time.perf_counter()
        try:
            module = target.module
            body = await self._fetcher.fetch(
                target.url, module.headers, module.timeout, module.basic_auth, module.verify
            )
            document = parse(target.module.format, body)
        except (FetchError, FormatError) as e:
            log.warning("stats target %s failed: %s", target.name, e)
            return [], 1.0, time.perf_counter() - start
        try:
            samples = extract(target.module.metrics, document, target.labels)
        except Exception:
            # An odd document must not fail the whole /metrics page.
            log.exception("stats target %s: extracting metrics failed", target.name)
            return [], 1.0, time.perf_counter() - start
        return samples, 0.0, time.perf_counter() - start

    async def collect(self) -> list[Metric]:
        results = await asyncio.gather(*(self._one(t) for t in self._targets))
        families: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for samples, _, _ in results:
            for s in samples:
                if (s.name, s.labels) in seen:
                    continue  # a series given twice keeps its first value
                seen.add((s.name, s.labels))
                family_name = s.name
                sample_name = s.name
                if s.rule.value_type == "counter":
                    # The exposition writes counters as <family>_total.
                    family_name = s.name.removesuffix("_total")
                    sample_name = family_name + "_total"
                family = families.get(family_name)
                if family is None:
                    family = Metric(family_name, s.rule.help, s.rule.value_type)
                    families[family_name] = family
                family.add_sample(sample_name, dict(s.labels), s.value, s.timestamp)
        error = Metric(
            "appstats_scrape_error", "1 if the last scrape of a stats target failed.", "gauge"
        )
        duration = Metric(
            "appstats_scrape_duration_seconds",
            "Time the last scrape of a stats target took.",
            "gauge",
        )
        for target, (_, failed, took) in zip(self._targets, results, strict=True):
            error.add_sample("appstats_scrape_error", {"target": target.name}, failed)
            duration.add_sample("appstats_scrape_duration_seconds", {"target": target.name}, took)
        return [*families.values(), error, duration]
