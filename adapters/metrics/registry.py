"""The series store: metric families built from StatsD events, with TTL and limits.

One family per metric name, with one type and one set of label names. An event that would give
an existing name another type or other label names is a conflict: counted, dropped, and the
scrape stays valid (prometheus-client would refuse such a family at scrape time; upstream's
``uncheckedCollector`` can then fail the whole scrape). New series past ``--statsd.max-series``
(or the per-name limit) are dropped and counted, so one bad client cannot exhaust memory.

Series are plain slotted objects the ingest stage updates directly; nothing here takes a lock,
because every update runs on the event loop's thread.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from adapters.metrics.mapping import DEFAULT_BUCKETS, DEFAULT_SUMMARY, SummaryOptions
from adapters.metrics.telemetry import RESERVED_PREFIXES, Telemetry

log = logging.getLogger("metrics-adapter")


class Scalar:
    """A counter or gauge value."""

    __slots__ = ("labels", "touched", "ttl", "value")

    def __init__(self, labels: tuple[str, ...], ttl: float, now: float) -> None:
        self.labels = labels
        self.value = 0.0
        self.ttl = ttl
        self.touched = now


class Histogram:
    __slots__ = ("bounds", "count", "counts", "labels", "sum", "touched", "ttl")

    def __init__(
        self, labels: tuple[str, ...], bounds: tuple[float, ...], ttl: float, now: float
    ) -> None:
        self.labels = labels
        self.bounds = bounds
        # One slot per bucket plus +Inf; not cumulative (the exposition adds them up).
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0
        self.ttl = ttl
        self.touched = now

    def observe(self, value: float) -> None:
        # NaN compares false with every bound; Go's client counts it in +Inf only, and so do we.
        slot = bisect_left(self.bounds, value) if value == value else len(self.bounds)
        self.counts[slot] += 1
        self.sum += value
        self.count += 1


class Summary:
    """Quantiles over a sliding window of ``max_age``, kept as ``age_buckets`` rotating buffers of
    the latest ``buf_cap`` observations each. Like upstream's client_golang summary the quantiles
    are an estimate; sum and count are exact."""

    __slots__ = (
        "_answer",
        "_older",
        "buf_cap",
        "buffers",
        "count",
        "current",
        "labels",
        "options",
        "rotate_at",
        "seen",
        "sum",
        "touched",
        "ttl",
    )

    def __init__(
        self, labels: tuple[str, ...], options: SummaryOptions, ttl: float, now: float
    ) -> None:
        self.labels = labels
        self.options = options
        self.buffers: list[list[float]] = [[]]
        # The newest buffer and the options' cap, kept at hand: observe() runs once per timer
        # line and every attribute hop there costs.
        self.current = self.buffers[-1]
        self.buf_cap = options.buf_cap
        self.seen = 0
        self.sum = 0.0
        self.count = 0
        self.ttl = ttl
        self.touched = now
        self.rotate_at = now + options.max_age / options.age_buckets
        # Scrape-time caches: the sorted values of every buffer but the current one (they only
        # change on rotation), and the last answer with the count it was computed at.
        self._older: list[float] = []
        self._answer: tuple[int, list[tuple[float, float]]] | None = None

    def observe(self, value: float) -> None:
        # ``touched`` is the time of this observation (the ingest stage sets it first).
        if self.touched >= self.rotate_at:
            self.rotate(self.touched)
        self.sum += value
        self.count += 1
        seen = self.seen
        self.seen = seen + 1
        if seen < self.buf_cap:
            self.current.append(value)
        else:
            # Full: overwrite the oldest, so the buffer holds the latest buf_cap observations of
            # its age bucket. (A random reservoir costs a random number per observation.)
            self.current[seen % self.buf_cap] = value

    def rotate(self, now: float) -> None:
        options = self.options
        step = options.max_age / options.age_buckets
        if now < self.rotate_at:
            return
        if now - self.rotate_at > options.max_age:
            # Idle for longer than the window: nothing in it is still current.
            self.buffers = [[]]
            self.seen = 0
            self.rotate_at = now + step
        while now >= self.rotate_at:
            self.buffers.append([])
            if len(self.buffers) > options.age_buckets:
                del self.buffers[0]
            self.seen = 0
            self.rotate_at += step
        self.current = self.buffers[-1]
        self._older = sorted(v for buffer in self.buffers[:-1] for v in buffer)
        self._answer = None

    def quantiles(self, now: float) -> list[tuple[float, float]]:
        self.rotate(now)
        if self._answer is not None and self._answer[0] == self.count:
            return self._answer[1]  # nothing observed or rotated since the last scrape
        # Two sorted runs: Timsort merges them in linear time.
        window = self._older + sorted(self.buffers[-1])
        window.sort()
        if not window:
            answer = [(q, float("nan")) for q, _ in self.options.quantiles]
        else:
            last = len(window) - 1
            answer = [
                (q, window[min(last, int(q * len(window)))]) for q, _ in self.options.quantiles
            ]
        self._answer = (self.count, answer)
        return answer


class DistinctSet:
    """StatsD sets (``|s``, behind ``--statsd.enable-sets``): distinct values seen since the last
    scrape, exposed as a gauge."""

    __slots__ = ("labels", "seen", "touched", "ttl")

    def __init__(self, labels: tuple[str, ...], ttl: float, now: float) -> None:
        self.labels = labels
        self.seen: set[str] = set()
        self.ttl = ttl
        self.touched = now


Series = Scalar | Histogram | Summary | DistinctSet

# The type a family is exposed as, and the names it occupies in the exposition.
_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "set": ("",),
    "histogram": ("", "_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


@dataclass
class Family:
    name: str
    kind: str
    help: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...]
    summary: SummaryOptions
    series: dict[tuple[str, ...], Series]


class Registry:
    def __init__(
        self,
        telemetry: Telemetry,
        max_series: int = 0,
        max_series_per_metric: int = 0,
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        self.telemetry = telemetry
        # Names other parts of /metrics already expose (the process collector's): a StatsD
        # family under one of them would make the exposition invalid.
        self.reserved = reserved
        self.max_series = max_series
        self.max_series_per_metric = max_series_per_metric
        self.families: dict[str, Family] = {}
        # Every exposed name (foo, foo_sum, foo_bucket...) → the family that owns it.
        self._owners: dict[str, str] = {}
        self.series_count = 0
        self._quiet_until = 0.0
        # Bumped whenever a series object is removed, so that caches holding series objects
        # (the ingest stage's line-shape cache) know to drop them.
        self.generation = 0

    def series(
        self,
        name: str,
        kind: str,
        event_type: str,
        labels: dict[str, str],
        help_text: str,
        ttl: float,
        now: float,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
        summary: SummaryOptions = DEFAULT_SUMMARY,
    ) -> Series | None:
        """The series for (name, labels), created if new; None (counted) on conflict or limit."""
        family = self.families.get(name)
        label_names = tuple(sorted(labels))
        if family is None:
            if not self._may_create(name, kind, label_names):
                self.telemetry.conflict(event_type)
                return None
            family = Family(name, kind, help_text, label_names, buckets, summary, {})
            self.families[name] = family
            exposed = "gauge" if kind == "set" else kind
            self.telemetry.metrics[exposed] = self.telemetry.metrics.get(exposed, 0) + 1
            for suffix in _SUFFIXES[kind]:
                self._owners[name + suffix] = name
        elif family.kind != kind or family.label_names != label_names:
            self.telemetry.conflict(event_type)
            return None
        key = tuple(labels[n] for n in label_names)
        found = family.series.get(key)
        if found is not None:
            found.ttl = ttl
            return found
        if self.max_series and self.series_count >= self.max_series:
            self._drop("max_series", name, now)
            return None
        if self.max_series_per_metric and len(family.series) >= self.max_series_per_metric:
            self._drop("max_series_per_metric", name, now)
            return None
        created: Series
        if kind == "histogram":
            created = Histogram(key, family.buckets, ttl, now)
        elif kind == "summary":
            created = Summary(key, family.summary, ttl, now)
        elif kind == "set":
            created = DistinctSet(key, ttl, now)
        else:
            created = Scalar(key, ttl, now)
        family.series[key] = created
        self.series_count += 1
        return created

    def _drop(self, reason: str, name: str, now: float) -> None:
        self.telemetry.dropped(reason)
        # Say so in the log, but at most once a minute: a flood of new series is the very case.
        if now >= self._quiet_until:
            self._quiet_until = now + 60.0
            log.warning(
                "series limit reached: new series are dropped",
                extra={"reason": reason, "metric": name, "series": self.series_count},
            )

    def _may_create(self, name: str, kind: str, label_names: tuple[str, ...]) -> bool:
        if name.startswith(RESERVED_PREFIXES) or not name:
            return False
        if any(n.startswith("__") for n in label_names):
            return False  # reserved for Prometheus' own use
        if (kind == "histogram" and "le" in label_names) or (
            kind == "summary" and "quantile" in label_names
        ):
            return False  # the exposition adds that label itself
        return all(
            name + suffix not in self._owners and name + suffix not in self.reserved
            for suffix in _SUFFIXES[kind]
        )

    def owns(self, name: str) -> bool:
        """Whether ``name`` is exposed by a StatsD family (or one of ours)."""
        return name in self._owners or name.startswith(RESERVED_PREFIXES)

    def sweep(self, now: float) -> int:
        """Remove series whose TTL has run out; returns how many."""
        removed = 0
        for name in list(self.families):
            family = self.families[name]
            expired = [
                key for key, s in family.series.items() if s.ttl > 0 and s.touched + s.ttl < now
            ]
            for key in expired:
                del family.series[key]
            removed += len(expired)
            if expired and not family.series:
                self._drop_family(family)
        if removed:
            self.series_count -= removed
            self.generation += 1
        return removed

    def _drop_family(self, family: Family) -> None:
        del self.families[family.name]
        for suffix in _SUFFIXES[family.kind]:
            self._owners.pop(family.name + suffix, None)

    def __iter__(self) -> Iterator[Family]:
        return iter(list(self.families.values()))
