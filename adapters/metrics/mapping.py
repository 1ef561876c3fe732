"""statsd_exporter mapping files: load, validate, and map a StatsD name to a Prometheus one.

The YAML schema is upstream's (``defaults`` + ``mappings``), with unknown keys refused so a typo
does not silently change what is exported. Matching follows upstream's FSM semantics: a glob
``*`` stands for exactly one dot-separated component; all glob rules are tried before any regex
rule; among globs the first rule in the file wins (or, with ``glob_disable_ordering``, the most
literal one); ``match_metric_type`` narrows a rule to one event type.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from adapters.metrics.errors import ConfigError
from adapters.metrics.parse import TYPE_NAMES
from adapters.metrics.telemetry import Telemetry

# prometheus client_golang's DefBuckets, upstream's default for histograms.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEFAULT_QUANTILES = ((0.5, 0.05), (0.9, 0.01), (0.99, 0.001))

_NAME_COMPONENT = r"[a-zA-Z_](?:-?[a-zA-Z0-9_])*"
_GLOB_RE = re.compile(rf"(?:\*|{_NAME_COMPONENT})(?:\.(?:\*|{_NAME_COMPONENT}))*\Z")
_TEMPLATE = r"\$\{?\d+\}?"
_METRIC_NAME_RE = re.compile(rf"(?:[a-zA-Z_]|{_TEMPLATE})(?:[a-zA-Z0-9_]|{_TEMPLATE})*\Z")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

_TOP_KEYS = frozenset({"defaults", "mappings"})
_DEFAULTS_KEYS = frozenset(
    {
        "observer_type",
        "timer_type",
        "buckets",
        "quantiles",
        "match_type",
        "glob_disable_ordering",
        "ttl",
        "summary_options",
        "histogram_options",
    }
)
_MAPPING_KEYS = frozenset(
    {
        "match",
        "name",
        "labels",
        "observer_type",
        "timer_type",
        "buckets",
        "quantiles",
        "match_type",
        "help",
        "action",
        "match_metric_type",
        "ttl",
        "summary_options",
        "histogram_options",
        "scale",
        "honor_labels",
    }
)
_SUMMARY_KEYS = frozenset({"quantiles", "max_age", "age_buckets", "buf_cap"})
# Native-histogram options are accepted for compatibility and ignored: the text exposition has
# no native histograms.
_HISTOGRAM_KEYS = frozenset(
    {"buckets", "native_histogram_bucket_factor", "native_histogram_max_buckets"}
)


@dataclass(frozen=True)
class SummaryOptions:
    quantiles: tuple[tuple[float, float], ...] = DEFAULT_QUANTILES
    max_age: float = 600.0
    age_buckets: int = 5
    buf_cap: int = 500


DEFAULT_SUMMARY = SummaryOptions()


@dataclass(frozen=True)
class Rule:
    """One ``mappings`` entry, validated and with the defaults applied."""

    index: int
    match: str
    match_type: str
    name: str
    labels: tuple[tuple[str, str], ...]
    observer_type: str
    buckets: tuple[float, ...]
    summary: SummaryOptions
    ttl: float
    action: str
    help: str
    match_metric_type: str
    honor_labels: bool
    scale: float | None
    glob: tuple[str, ...] | None = field(default=None, compare=False)
    regex: re.Pattern[str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class MappingConfig:
    rules: tuple[Rule, ...] = ()
    observer_type: str = "summary"
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    summary: SummaryOptions = SummaryOptions()
    ttl: float = 0.0
    glob_disable_ordering: bool = False


@dataclass(frozen=True)
class MapResult:
    """A matched rule and what it made of the StatsD name (name not yet escaped)."""

    rule: Rule
    name: str
    labels: tuple[tuple[str, str], ...]


# -- loading --------------------------------------------------------------------------------


def load_mapping_file(path: str) -> MappingConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(f"--statsd.mapping-config: cannot read {path}: {err.strerror}") from err
    try:
        return parse_mapping(text)
    except ConfigError as err:
        raise ConfigError(f"--statsd.mapping-config {path}: {err}") from err


def parse_mapping(text: str) -> MappingConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {' '.join(str(err).split())}") from err
    if document is None:
        return MappingConfig()
    top = _mapping(document, "the top level")
    _known(top, _TOP_KEYS, "the top level")
    defaults_doc = _mapping(top.get("defaults") or {}, "defaults")
    _known(defaults_doc, _DEFAULTS_KEYS, "defaults")

    observer_type = _observer_type(
        defaults_doc.get("observer_type") or defaults_doc.get("timer_type") or "", "defaults"
    )
    histogram_doc = _mapping(
        defaults_doc.get("histogram_options") or {}, "defaults.histogram_options"
    )
    _known(histogram_doc, _HISTOGRAM_KEYS, "defaults.histogram_options")
    buckets = _buckets(histogram_doc.get("buckets"), "defaults.histogram_options.buckets")
    if not buckets:
        buckets = _buckets(defaults_doc.get("buckets"), "defaults.buckets")
    summary_doc = _mapping(defaults_doc.get("summary_options") or {}, "defaults.summary_options")
    _known(summary_doc, _SUMMARY_KEYS, "defaults.summary_options")
    quantiles = _quantiles(summary_doc.get("quantiles"), "defaults.summary_options.quantiles")
    if not quantiles:
        quantiles = _quantiles(defaults_doc.get("quantiles"), "defaults.quantiles")
    summary = SummaryOptions(
        quantiles=quantiles or DEFAULT_QUANTILES,
        max_age=_duration(summary_doc.get("max_age", 0), "defaults.summary_options.max_age")
        or 600.0,
        age_buckets=_int(summary_doc.get("age_buckets", 0), "defaults.summary_options.age_buckets")
        or 5,
        buf_cap=_int(summary_doc.get("buf_cap", 0), "defaults.summary_options.buf_cap") or 500,
    )
    match_type = defaults_doc.get("match_type") or "glob"
    if match_type not in ("glob", "regex"):
        raise ConfigError(f"defaults.match_type: invalid match type {match_type!r}")
    defaults = MappingConfig(
        observer_type=observer_type or "summary",
        buckets=buckets or DEFAULT_BUCKETS,
        summary=summary,
        ttl=_duration(defaults_doc.get("ttl", 0), "defaults.ttl"),
        glob_disable_ordering=bool(defaults_doc.get("glob_disable_ordering", False)),
    )

    mappings = top.get("mappings") or []
    if not isinstance(mappings, list):
        raise ConfigError("mappings: must be a list")
    rules = tuple(
        _rule(i, _mapping(item, f"mappings[{i}]"), defaults, match_type)
        for i, item in enumerate(mappings)
    )
    return MappingConfig(
        rules=rules,
        observer_type=defaults.observer_type,
        buckets=defaults.buckets,
        summary=defaults.summary,
        ttl=defaults.ttl,
        glob_disable_ordering=defaults.glob_disable_ordering,
    )


def _rule(i: int, doc: dict[str, Any], defaults: MappingConfig, default_match_type: str) -> Rule:
    where = f"mappings[{i}]"
    _known(doc, _MAPPING_KEYS, where)
    match = doc.get("match")
    if not isinstance(match, str) or not match:
        raise ConfigError(f"{where}: 'match' is required")
    where = f"mappings[{i}] (match {match!r})"
    name = doc.get("name")
    if name is None or name == "":
        raise ConfigError(f"{where}: metric mapping didn't set a metric name")
    name = str(name)
    if not _METRIC_NAME_RE.match(name):
        raise ConfigError(f"{where}: metric name {name!r} is not a valid Prometheus name")
    labels_doc = _mapping(doc.get("labels") or {}, f"{where}.labels")
    labels: list[tuple[str, str]] = []
    for key, value in labels_doc.items():
        if not isinstance(key, str) or not _LABEL_NAME_RE.match(key):
            raise ConfigError(f"{where}: invalid label key: {key}")
        labels.append((key, "" if value is None else str(value)))

    match_type = doc.get("match_type") or default_match_type
    if match_type not in ("glob", "regex"):
        raise ConfigError(f"{where}: invalid match_type {match_type!r} (glob or regex)")
    action = doc.get("action") or "map"
    if action not in ("map", "drop"):
        raise ConfigError(f"{where}: invalid action {action!r} (map or drop)")
    metric_type = doc.get("match_metric_type") or ""
    if metric_type == "timer":
        metric_type = "observer"  # upstream's old name for the same thing
    if metric_type not in ("", *TYPE_NAMES[:3]):
        raise ConfigError(
            f"{where}: invalid match_metric_type {metric_type!r} (counter, gauge or observer)"
        )

    glob: tuple[str, ...] | None = None
    regex: re.Pattern[str] | None = None
    if match_type == "glob":
        if not _GLOB_RE.match(match):
            raise ConfigError(f"{where}: invalid match: {match}")
        glob = tuple(match.split("."))
    else:
        try:
            regex = re.compile(match)
        except re.error as err:
            raise ConfigError(f"{where}: invalid regex: {err}") from err

    observer_type = (
        _observer_type(doc.get("observer_type") or doc.get("timer_type") or "", where)
        or defaults.observer_type
    )
    histogram_doc = doc.get("histogram_options")
    summary_doc = doc.get("summary_options")
    if observer_type == "histogram" and summary_doc is not None:
        raise ConfigError(
            f"{where}: cannot use histogram observer and summary options at the same time"
        )
    explicit = doc.get("observer_type") or doc.get("timer_type")
    if observer_type == "summary" and histogram_doc is not None and explicit:
        raise ConfigError(
            f"{where}: cannot use summary observer and histogram options at the same time"
        )
    histogram = _mapping(histogram_doc or {}, f"{where}.histogram_options")
    _known(histogram, _HISTOGRAM_KEYS, f"{where}.histogram_options")
    summary_opts = _mapping(summary_doc or {}, f"{where}.summary_options")
    _known(summary_opts, _SUMMARY_KEYS, f"{where}.summary_options")
    if "buckets" in histogram and "buckets" in doc:
        raise ConfigError(
            f"{where}: cannot use buckets in both the top level and histogram options"
        )
    if "quantiles" in summary_opts and "quantiles" in doc:
        raise ConfigError(
            f"{where}: cannot use quantiles in both the top level and summary options"
        )
    buckets = _buckets(histogram.get("buckets") or doc.get("buckets"), f"{where}.buckets")
    quantiles = _quantiles(
        summary_opts.get("quantiles") or doc.get("quantiles"), f"{where}.quantiles"
    )
    summary = SummaryOptions(
        quantiles=quantiles or defaults.summary.quantiles,
        max_age=_duration(summary_opts.get("max_age", 0), f"{where}.summary_options.max_age")
        or defaults.summary.max_age,
        age_buckets=_int(summary_opts.get("age_buckets", 0), f"{where}.summary_options.age_buckets")
        or defaults.summary.age_buckets,
        buf_cap=_int(summary_opts.get("buf_cap", 0), f"{where}.summary_options.buf_cap")
        or defaults.summary.buf_cap,
    )
    ttl = _duration(doc.get("ttl", 0), f"{where}.ttl") or defaults.ttl
    scale_doc = doc.get("scale")
    scale: float | None = None
    if scale_doc is not None:
        if isinstance(scale_doc, bool) or not isinstance(scale_doc, int | float):
            raise ConfigError(f"{where}.scale: must be a number")
        scale = float(scale_doc)
    help_text = doc.get("help") or ""
    honor = doc.get("honor_labels", False)
    if not isinstance(honor, bool):
        raise ConfigError(f"{where}.honor_labels: must be true or false")
    return Rule(
        index=i,
        match=match,
        match_type=match_type,
        name=name,
        labels=tuple(labels),
        observer_type=observer_type,
        buckets=buckets or defaults.buckets,
        summary=summary,
        ttl=ttl,
        action=action,
        help=str(help_text),
        match_metric_type=metric_type,
        honor_labels=honor,
        scale=scale,
        glob=glob,
        regex=regex,
    )


def _mapping(doc: object, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a mapping, not {type(doc).__name__}")
    return doc


def _known(doc: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in doc if key not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")


def _observer_type(value: object, where: str) -> str:
    if value in ("", None):
        return ""
    if value not in ("histogram", "summary"):
        raise ConfigError(f"{where}: invalid observer_type {value!r} (histogram or summary)")
    return str(value)


def _buckets(value: object, where: str) -> tuple[float, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(b, int | float) and not isinstance(b, bool) for b in value
    ):
        raise ConfigError(f"{where}: must be a list of numbers")
    buckets = tuple(float(b) for b in value)
    if any(b >= c for b, c in itertools.pairwise(buckets)):
        raise ConfigError(f"{where}: must be in increasing order")
    return tuple(b for b in buckets if b != float("inf"))


def _quantiles(value: object, where: str) -> tuple[tuple[float, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of {{quantile, error}}")
    out = []
    for item in value:
        doc = _mapping(item, where)
        _known(doc, frozenset({"quantile", "error"}), where)
        try:
            quantile = float(doc.get("quantile", 0))
            error = float(doc.get("error", 0))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: quantile and error must be numbers") from err
        if not 0 <= quantile <= 1:
            raise ConfigError(f"{where}: quantile {quantile} is not within [0, 1]")
        out.append((quantile, error))
    return tuple(sorted(out))


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: must be a non-negative integer")
    return value


def _duration(value: object, where: str) -> float:
    """Seconds from a Go duration (``1m30s``, ``500ms``) or a bare 0."""
    if value in (0, "0", None, ""):
        return 0.0
    if isinstance(value, str):
        pos = 0
        total = 0.0
        for part in _DURATION_PART.finditer(value):
            if part.start() != pos:
                break
            total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
            pos = part.end()
        if pos == len(value) and pos > 0:
            return total
    raise ConfigError(f"{where}: invalid duration {value!r} (e.g. 30s, 1m20s, 1h)")


# -- matching -------------------------------------------------------------------------------


def expand_template(
    template: str, groups: Sequence[str], named: dict[str, str] | None = None
) -> str:
    """Go's ``regexp.Expand``: ``$1``/``${1}`` are capture groups, ``$name`` takes the longest
    run of ``[A-Za-z0-9_]`` (so ``$1_total`` is group ``1_total``, i.e. empty), ``$$`` is ``$``.
    """
    if "$" not in template:
        return template
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        if j + 1 < n and template[j + 1] == "$":
            out.append("$")
            i = j + 2
            continue
        ref, end = _template_ref(template, j + 1)
        if ref is None:
            out.append("$")
            i = j + 1
            continue
        if ref.isdigit():
            index = int(ref)
            if 1 <= index <= len(groups):
                out.append(groups[index - 1])
        elif named is not None:
            out.append(named.get(ref, ""))
        i = end
    return "".join(out)


def _template_ref(template: str, start: int) -> tuple[str | None, int]:
    n = len(template)
    if start < n and template[start] == "{":
        close = template.find("}", start)
        if close < 0:
            return None, start
        ref = template[start + 1 : close]
        if not ref or not all(c.isalnum() or c == "_" for c in ref):
            return None, start
        return ref, close + 1
    end = start
    while end < n and (template[end].isalnum() or template[end] == "_") and template[end].isascii():
        end += 1
    if end == start:
        return None, start
    return template[start:end], end


class Mapper:
    """Maps (StatsD name, event type) to a rule, with upstream's mapper cache in front."""

    def __init__(
        self,
        config: MappingConfig,
        telemetry: Telemetry,
        cache_size: int = 1000,
        cache_type: str = "lru",
    ) -> None:
        self.config = config
        self.telemetry = telemetry
        self.cache_size = cache_size
        self.cache_type = cache_type
        self._cache: OrderedDict[tuple[str, int], MapResult | None] = OrderedDict()
        self._globs_by_length: dict[int, list[Rule]] = {}
        self._regexes: list[Rule] = []
        for rule in config.rules:
            if rule.glob is not None:
                self._globs_by_length.setdefault(len(rule.glob), []).append(rule)
            else:
                self._regexes.append(rule)
        telemetry.loaded_mappings = len(config.rules)

    def map(self, name: str, kind: int) -> MapResult | None:
        key = (name, kind)
        telemetry = self.telemetry
        telemetry.mapper_cache_gets += 1
        cache = self._cache
        if key in cache:
            telemetry.mapper_cache_hits += 1
            if self.cache_type == "lru":
                cache.move_to_end(key)
            return cache[key]
        result = self._lookup(name, TYPE_NAMES[kind])
        if self.cache_size > 0:
            if len(cache) >= self.cache_size:
                # "random" evicts the oldest or the newest entry at random: O(1), and like
                # upstream's random replacement it never pays for recency bookkeeping on hits.
                last = self.cache_type != "lru" and bool(random.getrandbits(1))
                cache.popitem(last=last)
            cache[key] = result
            telemetry.mapper_cache_length = len(cache)
        return result

    def _lookup(self, name: str, type_name: str) -> MapResult | None:
        parts = name.split(".")
        candidates = self._globs_by_length.get(len(parts), ())
        best: tuple[Rule, list[str]] | None = None
        best_rank: tuple[int, ...] = ()
        for rule in candidates:
            if rule.match_metric_type and rule.match_metric_type != type_name:
                continue
            pattern = rule.glob
            assert pattern is not None
            captures: list[str] = []
            for want, got in zip(pattern, parts, strict=True):
                if want == "*":
                    captures.append(got)
                elif want != got:
                    break
            else:
                if not self.config.glob_disable_ordering:
                    best = (rule, captures)
                    break
                # Without ordering upstream's FSM prefers a literal component over '*' at the
                # first place where two matching rules differ.
                rank = tuple(1 if want == "*" else 0 for want in pattern)
                if best is None or rank < best_rank:
                    best, best_rank = (rule, captures), rank
        if best is not None:
            rule, captures = best
            return MapResult(
                rule=rule,
                name=expand_template(rule.name, captures),
                labels=tuple((k, expand_template(v, captures)) for k, v in rule.labels),
            )
        for rule in self._regexes:
            assert rule.regex is not None
            found = rule.regex.search(name)
            if found is None:
                continue
            if rule.match_metric_type and rule.match_metric_type != type_name:
                continue
            groups = [g or "" for g in found.groups()]
            named = {k: v or "" for k, v in found.groupdict().items()}
            return MapResult(
                rule=rule,
                name=expand_template(rule.name, groups, named),
                labels=tuple((k, expand_template(v, groups, named)) for k, v in rule.labels),
            )
        return None
