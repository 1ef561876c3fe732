"""The /metrics body: scrape-time sources awaited concurrently, a failing source not failing the
scrape, summaries over a sliding window, Go-style number formatting."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from adapters.metrics.exposition import Exposition, format_value
from adapters.metrics.mapping import SummaryOptions
from adapters.metrics.registry import Registry, Summary
from adapters.metrics.telemetry import Telemetry


class FakeSource:
    def __init__(self, name: str, delay: float, log: list[str], fail: bool = False) -> None:
        self._name = name
        self.delay = delay
        self.log = log
        self.fail = fail

    @property
    def name(self) -> str:
        return self._name

    async def collect(self) -> list[Metric]:
        self.log.append(f"start {self._name}")
        await asyncio.sleep(self.delay)
        self.log.append(f"end {self._name}")
        if self.fail:
            raise RuntimeError("boom")
        family = GaugeMetricFamily(f"{self._name}_up", "Source is up.", labels=["source"])
        family.add_metric([self._name], 1.0)
        return [family]

    async def close(self) -> None:
        return None


async def _no_reload() -> str | None:
    return None


def exposition(registry: Registry, telemetry: Telemetry) -> Exposition:
    return Exposition(registry, telemetry, "/metrics", False, _no_reload, lambda: None, lambda: 0.0)


def test_sources_are_collected_concurrently_and_a_failure_is_contained() -> None:
    telemetry = Telemetry()
    expo = exposition(Registry(telemetry), telemetry)
    log: list[str] = []
    expo.sources = [
        FakeSource("jvm_a", 0.2, log),
        FakeSource("jvm_b", 0.2, log),
        FakeSource("broken", 0.0, log, fail=True),
    ]
    body = asyncio.run(expo.scrape()).decode()
    assert log[:3] == ["start jvm_a", "start jvm_b", "start broken"]
    assert 'jvm_a_up{source="jvm_a"} 1.0' in body
    assert 'jvm_b_up{source="jvm_b"} 1.0' in body
    assert "broken_up" not in body
    assert "statsd_exporter_lines_total 0" in body
    assert "process_" in body or "python_info" in body


def test_summary_quantiles_and_window() -> None:
    options = SummaryOptions(quantiles=((0.5, 0.05), (0.9, 0.01)), max_age=10, age_buckets=2)
    summary = Summary((), options, ttl=0, now=0.0)
    for value in range(1, 101):
        summary.observe(float(value))
    assert summary.quantiles(1.0) == [(0.5, 51.0), (0.9, 91.0)]
    assert (summary.count, summary.sum) == (100, 5050.0)
    summary.touched = 10.5  # as the ingest stage does before each observation
    summary.observe(1000.0)
    # After max_age every old observation has rotated out; count and sum never reset.
    quantiles = summary.quantiles(11.0)
    assert quantiles == [(0.5, 1000.0), (0.9, 1000.0)]
    assert summary.quantiles(30.0)[0][1] != summary.quantiles(30.0)[0][1]  # NaN: empty window
    assert summary.count == 101


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.25, "0.25"), (1e-05, "1e-05"), (float("inf"), "+Inf"), (-3.0, "-3")],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_a_name_exposed_twice_is_dropped_not_duplicated() -> None:
    from adapters.metrics.exposition import process_metric_names
    from adapters.metrics.ingest import Ingester
    from adapters.metrics.mapping import Mapper, MappingConfig
    from adapters.metrics.parse import LineParser

    telemetry = Telemetry()
    registry = Registry(telemetry, reserved=process_metric_names())
    ingester = Ingester(
        LineParser(telemetry), Mapper(MappingConfig(), telemetry), registry, telemetry
    )
    ingester.lines(["jvm_a_up:1|g", "process_cpu_seconds_total:5|c"])
    assert telemetry.events_conflict == {"counter": 1}  # the process collector owns that name
    expo = exposition(registry, telemetry)
    log: list[str] = []
    expo.sources = [FakeSource("jvm_a", 0.0, log), FakeSource("jvm_b", 0.0, log)]
    body = asyncio.run(expo.scrape()).decode()
    assert body.count("# TYPE jvm_a_up ") == 1
    assert "jvm_a_up 1" in body  # the StatsD gauge keeps the name
    assert 'jvm_b_up{source="jvm_b"} 1.0' in body
    types = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)),
        max_size=80,
    ),
    st.floats(0, 5),
)
def test_summary_caches_never_change_the_answer(
    steps: list[tuple[float, float]], scrape_gap: float
) -> None:
    options = SummaryOptions(
        quantiles=((0.5, 0.05), (0.99, 0.001)), max_age=4, age_buckets=4, buf_cap=7
    )
    summary = Summary((), options, ttl=0, now=0.0)
    clock = 0.0
    for advance, value in steps:
        clock += advance
        summary.touched = clock
        summary.observe(value)
        if advance > 2.5:  # scrape now and then, so the caches are used
            summary.quantiles(clock)
    clock += scrape_gap
    got = summary.quantiles(clock)
    window = sorted(v for buffer in summary.buffers for v in buffer)
    if not window:
        assert all(v != v for _, v in got)
    else:
        want = [
            (q, window[min(len(window) - 1, int(q * len(window)))]) for q, _ in options.quantiles
        ]
        assert got == want
