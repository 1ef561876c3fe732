"""The ambassador's per-route counters: latencies collected on the hot path and folded later
must give the same series as latencies counted one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ambassadors.redis_split import metrics
from ambassadors.redis_split.metrics import RouteStats

# Latencies around and on every bucket bound, where "le" counting is easy to get wrong.
latency = st.one_of(
    st.sampled_from([0.0, 0.0001, 0.00025, 0.0005, 0.001, 0.05, 5.0, 5.000001, 60.0]),
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
)


@given(st.lists(latency, max_size=300))
def test_folded_latencies_count_as_observed_ones(latencies: list[float]) -> None:
    one_by_one, folded = RouteStats(), RouteStats()
    for seconds in latencies:
        one_by_one.observe(seconds)
        folded.latencies.append(seconds)
    folded.fold()
    assert folded.buckets == one_by_one.buckets
    assert folded.ok == one_by_one.ok == len(latencies)
    assert abs(folded.seconds - one_by_one.seconds) <= 1e-9 * max(1.0, one_by_one.seconds)
    assert folded.latencies == []


def test_a_scrape_includes_latencies_not_folded_yet() -> None:
    stats = metrics.COMMAND_STATS.route("test-scrape")
    stats.latencies.extend([0.0002, 0.003, 2.0])
    families = {family.name: family for family in metrics.COMMAND_STATS.collect()}
    commands = {
        tuple(sample.labels.values()): sample.value
        for sample in families["redis_ambassador_commands"].samples
        if sample.labels.get("route") == "test-scrape"
    }
    assert commands == {("test-scrape", "ok"): 3}
    histogram = {
        (sample.name, sample.labels.get("le")): sample.value
        for sample in families["redis_ambassador_command_duration_seconds"].samples
        if sample.labels.get("route") == "test-scrape"
    }
    assert histogram[("redis_ambassador_command_duration_seconds_bucket", "0.00025")] == 1
    assert histogram[("redis_ambassador_command_duration_seconds_bucket", "0.005")] == 2
    assert histogram[("redis_ambassador_command_duration_seconds_bucket", "1.0")] == 2
    assert histogram[("redis_ambassador_command_duration_seconds_bucket", "+Inf")] == 3
    assert histogram[("redis_ambassador_command_duration_seconds_count", None)] == 3
