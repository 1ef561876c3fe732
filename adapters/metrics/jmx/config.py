"""The ``--jmx.config`` file: jmx_exporter's YAML schema, plus the keys that say where Jolokia is.

Everything jmx_exporter reads is accepted with its meaning and defaults (so users bring their
rules unchanged); keys that only make sense inside jmx_exporter's own process (``hostPort``,
``jmxUrl``, ``ssl``, ``httpServer``, ``openTelemetry``) are accepted and ignored. Our keys:

- ``jolokiaUrl`` (required): the Jolokia agent's base URL, e.g. ``http://127.0.0.1:8778/jolokia``.
- ``username`` / ``password``: jmx_exporter's JMX credentials, used here for Jolokia's HTTP basic
  auth (``passwordFile``: read it from a file, e.g. a mounted Secret). The password is never
  logged or shown in errors.
- ``timeout``: seconds for one scrape (default 5).
- ``tlsInsecureSkipVerify``, ``tlsCaFile``: TLS to an ``https`` Jolokia URL.
- ``targetName``: with several ``--jmx.config`` files, the ``jmx_target`` label value of this
  JVM's series (default: the file name without extension).

Anything else is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from adapters.metrics.errors import ConfigError
from adapters.metrics.jmx.javaregex import (
    JavaRegexError,
    Replacement,
    RulePattern,
    compile_rule_pattern,
    required_literal,
)
from adapters.metrics.jmx.objectname import ObjectNamePattern

_IGNORED_KEYS = frozenset({"hostPort", "jmxUrl", "ssl", "httpServer", "openTelemetry"})
_KNOWN_KEYS = _IGNORED_KEYS | {
    "jolokiaUrl",
    "username",
    "password",
    "passwordFile",
    "timeout",
    "tlsInsecureSkipVerify",
    "tlsCaFile",
    "targetName",
    "startDelaySeconds",
    "lowercaseOutputName",
    "lowercaseOutputLabelNames",
    "inferCounterTypeFromName",
    "includeObjectNames",
    "whitelistObjectNames",
    "excludeObjectNames",
    "blacklistObjectNames",
    "excludeJvmMetrics",
    "includeObjectNameAttributes",
    "excludeObjectNameAttributes",
    "autoExcludeObjectNameAttributes",
    "metricCustomizers",
    "rules",
}
_RULE_KEYS = frozenset(
    {
        "pattern",
        "name",
        "value",
        "valueFactor",
        "help",
        "attrNameSnakeCase",
        "cache",
        "type",
        "labels",
    }
)
# What excludeJvmMetrics excludes in jmx_exporter.
_JVM_DOMAINS = (
    "com.sun.management:*",
    "com.sun.management.jmxremote:*",
    "java.lang:*",
    "java.nio:*",
    "java.util.logging:*",
    "javax.management:*",
    "javax.management.remote:*",
    "jdk.internal:*",
    "jdk.management:*",
    "jdk.management.jfr:*",
    "sun.management:*",
)
# jmx_exporter 1.x exports GAUGE and COUNTER as such and every other type as unknown; the
# other names are the ones 0.x accepted (Collector.Type), so old files still load. Anything else
# is most likely a typo and an error.
_TYPES = {
    "GAUGE": "GAUGE",
    "COUNTER": "COUNTER",
    **dict.fromkeys(
        ("UNTYPED", "UNKNOWN", "SUMMARY", "HISTOGRAM", "INFO", "STATE_SET", "GAUGE_HISTOGRAM"),
        "UNKNOWN",
    ),
}


@dataclass(frozen=True)
class Rule:
    """One compiled rule. ``None`` fields were not given."""

    pattern: RulePattern | None
    literal: str | None  # text every match must contain (a cheap pre-check), if known
    name: Replacement | None
    value: Replacement | None
    value_factor: float
    help: Replacement | None
    attr_name_snake_case: bool
    cache: bool
    type: str  # GAUGE, COUNTER or UNKNOWN
    labels: tuple[tuple[Replacement, Replacement], ...] | None  # sorted by name, as a TreeMap


@dataclass(frozen=True)
class ExtraMetric:
    name: str
    value: object
    description: str | None


@dataclass(frozen=True)
class MetricCustomizer:
    """jmx_exporter 1.x ``metricCustomizers``: for beans of ``domain`` having ``properties``,
    some attributes' values become labels of all the bean's samples, and fixed extra values
    are exported as if they were attributes."""

    domain: str
    properties: tuple[tuple[str, str], ...]
    attributes_as_labels: tuple[str, ...]
    extra_metrics: tuple[ExtraMetric, ...]

    def applies_to(self, domain: str, properties: dict[str, str]) -> bool:
        return domain == self.domain and all(properties.get(k) == v for k, v in self.properties)


@dataclass(frozen=True)
class JmxConfig:
    jolokia_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 5.0
    tls_insecure_skip_verify: bool = False
    tls_ca_file: str | None = None
    target_name: str | None = None
    start_delay_seconds: int = 0
    lowercase_output_name: bool = False
    lowercase_output_label_names: bool = False
    infer_counter_type_from_name: bool = False
    include: tuple[ObjectNamePattern, ...] = ()
    exclude: tuple[ObjectNamePattern, ...] = ()
    include_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exclude_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    metric_customizers: tuple[MetricCustomizer, ...] = ()
    ignored_keys: tuple[str, ...] = ()

    @property
    def has_cached_rules(self) -> bool:
        return any(r.cache for r in self.rules)


def load_config(path: str) -> JmxConfig:
    """Read and validate one file. Errors name the file and the key."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"--jmx.config {path}: cannot read: {e.strerror}") from e
    return parse_config(text, source=path)


def parse_config(text: str, source: str = "<string>") -> JmxConfig:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--jmx.config {source}: invalid YAML: {_one_line(str(e))}") from e
    try:
        return _build(doc if doc is not None else {})
    except ConfigError as e:
        raise ConfigError(f"--jmx.config {source}: {e}") from e


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _build(doc: Any) -> JmxConfig:
    if not isinstance(doc, dict):
        raise ConfigError("the file must be a YAML mapping")
    for key in doc:
        if key not in _KNOWN_KEYS:
            raise ConfigError(f"unknown key {key!r}")
    if "hostPort" in doc and "jmxUrl" in doc:
        raise ConfigError("at most one of hostPort and jmxUrl must be provided")

    url = doc.get("jolokiaUrl")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError("key 'jolokiaUrl' is required: the Jolokia URL, http(s)://host:port/path")
    username = _opt_str(doc, "username")
    password = _opt_str(doc, "password")
    password_file = _opt_str(doc, "passwordFile")
    if password_file is not None:
        if password is not None:
            raise ConfigError("at most one of password and passwordFile must be provided")
        try:
            with open(password_file, encoding="utf-8") as f:
                # A mounted Secret often ends with a newline that is not part of the password.
                password = f.read().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(
                f"key 'passwordFile': cannot read {password_file!r}: {e.strerror}"
            ) from e
    timeout = _number(doc, "timeout", 5.0)
    if not timeout > 0:
        raise ConfigError("key 'timeout' must be > 0 (seconds)")
    ca_file = _opt_str(doc, "tlsCaFile")
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ConfigError(f"key 'tlsCaFile': no such file {ca_file!r}")
    start_delay = doc.get("startDelaySeconds", 0)
    if not isinstance(start_delay, int) or isinstance(start_delay, bool) or start_delay < 0:
        raise ConfigError("key 'startDelaySeconds' must be a whole number of seconds")

    # jmx_exporter prefers the new names and falls back to the old ones.
    include_key = "includeObjectNames" if "includeObjectNames" in doc else "whitelistObjectNames"
    exclude_key = "excludeObjectNames" if "excludeObjectNames" in doc else "blacklistObjectNames"
    include = _object_names(doc, include_key) if include_key in doc else ()
    if not include:
        include = (ObjectNamePattern.parse("*:*"),)
    exclude = _object_names(doc, exclude_key) if exclude_key in doc else ()
    if _bool(doc, "excludeJvmMetrics", False):
        exclude = exclude + tuple(ObjectNamePattern.parse(n) for n in _JVM_DOMAINS)

    if "rules" in doc and doc["rules"] is not None:
        raw_rules = doc["rules"]
        if not isinstance(raw_rules, list):
            raise ConfigError("key 'rules' must be a list")
        rules = tuple(_rule(i, r) for i, r in enumerate(raw_rules))
    else:
        rules = (_default_rule(),)

    ignored = tuple(k for k in doc if k in _IGNORED_KEYS)
    return JmxConfig(
        jolokia_url=url,
        username=username,
        password=password,
        timeout=timeout,
        tls_insecure_skip_verify=_bool(doc, "tlsInsecureSkipVerify", False),
        tls_ca_file=ca_file,
        target_name=_opt_str(doc, "targetName"),
        start_delay_seconds=start_delay,
        lowercase_output_name=_bool(doc, "lowercaseOutputName", False),
        lowercase_output_label_names=_bool(doc, "lowercaseOutputLabelNames", False),
        infer_counter_type_from_name=_bool(doc, "inferCounterTypeFromName", False),
        include=include,
        exclude=exclude,
        include_attributes=_attribute_map(doc, "includeObjectNameAttributes"),
        exclude_attributes=_attribute_map(doc, "excludeObjectNameAttributes"),
        rules=rules,
        metric_customizers=_customizers(doc.get("metricCustomizers")),
        ignored_keys=ignored,
    )


def _opt_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"key {key!r} must be a string")
    return value


def _bool(doc: Mapping[str, Any], key: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"key {key!r} must be true or false")
    return value


def _number(doc: Mapping[str, Any], key: str, default: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"key {key!r} must be a number")
    return float(value)


def _object_names(doc: Mapping[str, Any], key: str) -> tuple[ObjectNamePattern, ...]:
    names = doc[key]
    if names is None:
        return ()
    if not isinstance(names, list):
        raise ConfigError(f"key {key!r} must be a list of ObjectNames")
    out = []
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"key {key!r}: {name!r} is not an ObjectName string")
        try:
            out.append(ObjectNamePattern.parse(name))
        except ValueError as e:
            raise ConfigError(f"key {key!r}: invalid ObjectName: {e}") from e
    return tuple(out)


def _attribute_map(doc: Mapping[str, Any], key: str) -> dict[str, frozenset[str]]:
    raw = doc.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"key {key!r} must map ObjectNames to lists of attribute names")
    out: dict[str, frozenset[str]] = {}
    for name, attrs in raw.items():
        if not isinstance(name, str) or not isinstance(attrs, list):
            raise ConfigError(f"key {key!r}: {name!r} must map to a list of attribute names")
        try:
            parsed = ObjectNamePattern.parse(name)
        except ValueError as e:
            raise ConfigError(f"key {key!r}: invalid ObjectName: {e}") from e
        if parsed.is_pattern:
            raise ConfigError(f"key {key!r}: {name!r} must be an ObjectName, not a pattern")
        out[name] = frozenset(str(a) for a in attrs)
    return out


def _customizers(raw: Any) -> tuple[MetricCustomizer, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("key 'metricCustomizers' must be a list")
    out = []
    for i, item in enumerate(raw):
        where = f"metricCustomizers[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a mapping")
        for key in item:
            if key not in ("mbeanFilter", "attributesAsLabels", "extraMetrics"):
                raise ConfigError(f"{where}: unknown key {key!r}")
        mbean_filter = item.get("mbeanFilter")
        if not isinstance(mbean_filter, dict):
            raise ConfigError(f"{where}: must provide mbeanFilter")
        for key in mbean_filter:
            if key not in ("domain", "properties"):
                raise ConfigError(f"{where}.mbeanFilter: unknown key {key!r}")
        domain = mbean_filter.get("domain")
        if not isinstance(domain, str):
            raise ConfigError(f"{where}.mbeanFilter: must provide domain")
        properties = mbean_filter.get("properties") or {}
        if not isinstance(properties, dict):
            raise ConfigError(f"{where}.mbeanFilter.properties must be a mapping")
        labels = item.get("attributesAsLabels")
        extras = item.get("extraMetrics")
        if labels is None and extras is None:
            raise ConfigError(f"{where}: must provide attributesAsLabels or extraMetrics")
        if labels is not None and not isinstance(labels, list):
            raise ConfigError(f"{where}.attributesAsLabels must be a list of attribute names")
        extra_metrics = []
        for j, extra in enumerate(extras or []):
            if not isinstance(extra, dict):
                raise ConfigError(f"{where}.extraMetrics[{j}] must be a mapping")
            for key in extra:
                if key not in ("name", "value", "description"):
                    raise ConfigError(f"{where}.extraMetrics[{j}]: unknown key {key!r}")
            if not isinstance(extra.get("name"), str):
                raise ConfigError(f"{where}.extraMetrics[{j}]: must provide name")
            if extra.get("value") is None:
                raise ConfigError(f"{where}.extraMetrics[{j}]: must provide value")
            description = extra.get("description")
            extra_metrics.append(
                ExtraMetric(
                    extra["name"], extra["value"], None if description is None else str(description)
                )
            )
        out.append(
            MetricCustomizer(
                domain,
                tuple((str(k), str(v)) for k, v in properties.items()),
                tuple(str(a) for a in labels or ()),
                tuple(extra_metrics),
            )
        )
    return tuple(out)


def _default_rule() -> Rule:
    return Rule(
        pattern=None,
        literal=None,
        name=None,
        value=None,
        value_factor=1.0,
        help=None,
        attr_name_snake_case=False,
        cache=False,
        type="UNKNOWN",
        labels=None,
    )


def _rule(index: int, raw: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    for key in raw:
        if key not in _RULE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}")
    pattern = None
    literal = None
    if "pattern" in raw:
        text = raw["pattern"]
        if not isinstance(text, str):
            text = str(text)
        try:
            pattern = compile_rule_pattern(text)
        except JavaRegexError as e:
            raise ConfigError(f"{where}.pattern: invalid regex {text!r}: {e}") from e
        literal = required_literal(text)

    def replacement(key: str) -> Replacement | None:
        if key not in raw or raw[key] is None:
            return None
        value = raw[key]
        text = value if isinstance(value, str) else _java_value_of(value)
        try:
            return Replacement.parse(text, pattern)
        except JavaRegexError as e:
            raise ConfigError(f"{where}.{key}: {e}") from e

    name = replacement("name")
    value = replacement("value")
    if value is not None and value.literal == "":
        value = None  # jmx_exporter ignores an empty value
    help_ = replacement("help")

    value_factor = 1.0
    if "valueFactor" in raw:
        # jmx_exporter: String.valueOf(x) then Double.valueOf, keeping 1.0 when that fails.
        try:
            value_factor = float(str(raw["valueFactor"]))
        except ValueError:
            value_factor = 1.0

    rule_type = "UNKNOWN"
    if "type" in raw:
        t = raw["type"]
        if not isinstance(t, str) or t not in _TYPES:
            raise ConfigError(f"{where}.type must be GAUGE, COUNTER or UNTYPED, not {t!r}")
        rule_type = _TYPES[t]

    labels = None
    if "labels" in raw and raw["labels"] is not None:
        raw_labels = raw["labels"]
        if not isinstance(raw_labels, dict):
            raise ConfigError(f"{where}.labels must be a mapping")
        pairs = []
        for label_name in sorted(str(k) for k in raw_labels):
            label_value = raw_labels.get(label_name)
            if label_value is None:
                raise ConfigError(f"{where}.labels.{label_name} has no value")
            try:
                pairs.append(
                    (
                        Replacement.parse(label_name, pattern),
                        Replacement.parse(
                            label_value
                            if isinstance(label_value, str)
                            else _java_value_of(label_value),
                            pattern,
                        ),
                    )
                )
            except JavaRegexError as e:
                raise ConfigError(f"{where}.labels.{label_name}: {e}") from e
        labels = tuple(pairs)

    if (labels is not None or help_ is not None) and name is None:
        raise ConfigError(f"{where}: must provide name, if help or labels are given")
    if name is not None and pattern is None:
        raise ConfigError(f"{where}: must provide pattern, if name is given")

    return Rule(
        pattern=pattern,
        literal=literal,
        name=name,
        value=value,
        value_factor=value_factor,
        help=help_,
        attr_name_snake_case=_bool(raw, "attrNameSnakeCase", False),
        cache=_bool(raw, "cache", False),
        type=rule_type,
        labels=labels,
    )


def _java_value_of(value: Any) -> str:
    """``String.valueOf`` of a YAML scalar as SnakeYAML would have typed it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
