"""The rule engine: each flattened attribute against the rules, as jmx_exporter's collector does.

For every attribute the match string is ``domain<prop=val, ...><key1, key2>attrName: value``;
the first rule whose pattern matches decides the name, labels, help, type and value. The result
for an attribute depends only on that string and the config, so it is cached per attribute
(bean name + attribute name) together with the value it was computed for: an attribute whose
value did not change since the last scrape costs one dict lookup, and a rule that cannot match
is skipped by a substring check before its regex runs. Rules marked ``cache: true`` see the value
as ``<cache>``, exactly as in jmx_exporter, so their result is reused whatever the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from adapters.metrics.jmx.config import JmxConfig, Rule
from adapters.metrics.jmx.flatten import java_string
from adapters.metrics.jmx.javaregex import Groups

_UNSAFE_RUN = re.compile(r"[^a-zA-Z0-9:]+")
_RESERVED_SUFFIXES = (
    "_total",
    "_created",
    "_bucket",
    "_info",
    ".total",
    ".created",
    ".bucket",
    ".info",
)
_JAVA_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFdD]?)")


def safe_name(name: str) -> str:
    """jmx_exporter's ``toSafeName``: illegal characters and runs of ``_`` become one ``_``, and
    a leading digit gets a ``_`` in front."""
    prefix = "_" if name[:1].isdigit() else ""
    return prefix + _UNSAFE_RUN.sub("_", name) if name else name


def snake_case(name: str) -> str:
    """jmx_exporter 1.x ``toSnakeAndLowerCase``: ``HeapMemoryUsage`` -> ``heap_memory_usage``,
    ``URLCount`` -> ``urlcount``."""
    if not name:
        return name
    out = [name[0].lower()]
    prev_upper_or_underscore = name[0].isupper() or name[0] == "_"
    for c in name[1:]:
        upper = c.isupper()
        if upper and not prev_upper_or_underscore:
            out.append("_")
        out.append(c.lower())
        prev_upper_or_underscore = upper or c == "_"
    return "".join(out)


def sanitize_metric_name(name: str) -> str:
    """client_java 1.x ``PrometheusNaming.sanitizeMetricName``: suffixes the exposition format
    adds itself (``_total``, ``_info``, ...) are removed from the name."""
    changed = True
    while changed:
        changed = False
        for suffix in _RESERVED_SUFFIXES:
            if name == suffix:
                return suffix[1:]
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                changed = True
    return name


def parse_java_double(text: str) -> float | None:
    """``Double.valueOf``: trims, accepts ``NaN``/``Infinity`` and a trailing ``d``/``f``."""
    text = text.strip()
    if _JAVA_DOUBLE.fullmatch(text) is None:
        return None
    if text[-1] in "fFdD" and not text.endswith("Infinity"):
        text = text[:-1]
    return float(text.replace("Infinity", "inf"))


# NamedTuples rather than frozen dataclasses: one of each is made per attribute per scrape, and
# a tuple is several times cheaper to create.
class Matched(NamedTuple):
    """The outcome of the rules for one attribute, without the sample value."""

    name: str  # final metric name (sanitized)
    match_name: str  # the string the rule matched, for _objectname disambiguation
    type: str
    help: str
    labels: tuple[tuple[str, str], ...]  # sorted by name, unique
    value: float | None  # from the rule's ``value``, else the attribute's own
    value_factor: float


_SKIP: Final = object()  # a rule matched but says "no sample" (empty name, unparsable value)
# Every character Java's toString of a number or boolean can produce.
_VALUE_CHARS = frozenset("0123456789.-E" + "NaN" + "Infinity" + "true" + "false")
_SWEEP_EVERY = 8  # scrapes between evictions of cache entries nobody used
# (name, type, help, labels) of a matched rule
_Described = tuple[str, str, str, tuple[tuple[str, str], ...]]


class Sample(NamedTuple):
    matched: Matched
    value: float


class RuleEngine:
    """Compiled rules of one config, with the per-attribute result cache."""

    def __init__(self, config: JmxConfig) -> None:
        self._config = config
        self._rules = config.rules
        self._snake: dict[str, str] = {}
        # (bean name, attribute, attribute labels) -> [value it was matched with, result,
        # candidate rules, scrape it was last used in]. Entries are updated in place (no
        # allocation for an unchanged attribute) and swept every _SWEEP_EVERY scrapes.
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Any]] = {}
        self._described: dict[tuple[object, ...], list[Any]] = {}  # [described, last used]
        self._scrape = 0
        self._value_splits = {id(r): _value_splits(r.literal) for r in config.rules}
        # Rules whose name, labels or help use $0, the whole match string (value included).
        self._uses_whole_match = {
            id(r)
            for r in config.rules
            for rep in (r.name, r.help, *(x for pair in r.labels or () for x in pair))
            if rep is not None and 0 in rep.parts
        }
        self.cached_hits = 0

    def begin(self) -> None:
        self._scrape += 1
        self.cached_hits = 0

    def end(self) -> None:
        """Drop what no recent scrape used, so a JVM churning through bean names (or values
        captured into names) keeps memory bounded."""
        if self._scrape % _SWEEP_EVERY:
            return
        oldest = self._scrape - _SWEEP_EVERY
        self._cache = {k: v for k, v in self._cache.items() if v[3] > oldest}
        self._described = {k: v for k, v in self._described.items() if v[1] > oldest}

    def record(
        self,
        domain: str,
        properties: dict[str, str],
        bean_name: str,
        attr_keys: tuple[str, ...],
        attr_name: str,
        description: str | None,
        value: object,
        out: list[Sample],
        attribute_labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Match one leaf value; append its sample to ``out`` if a rule exports it.

        ``bean_name`` is ``domain<props><attr keys>`` (the caller builds it once per bean);
        ``attribute_labels`` are the bean's ``attributesAsLabels`` (name, value) pairs."""
        value_str = java_string(value)
        key = (bean_name, attr_name, attribute_labels)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == value_str:
            result = cached[1]
            cached[3] = self._scrape
            self.cached_hits += 1
        else:
            numeric = not isinstance(value, str)
            candidates = cached[2] if cached is not None else None
            if candidates is None and numeric:
                candidates = self._candidates(bean_name, attr_name)
            result = self._match(
                domain,
                properties,
                bean_name,
                attr_keys,
                attr_name,
                description,
                value_str,
                candidates if numeric else None,
                attribute_labels,
            )
            if cached is None:
                self._cache[key] = [value_str, result, candidates, self._scrape]
            else:
                cached[0], cached[1], cached[2], cached[3] = (
                    value_str,
                    result,
                    candidates,
                    self._scrape,
                )
        if result is None or result is _SKIP:
            return
        assert isinstance(result, Matched)
        raw = result.value if result.value is not None else value
        if isinstance(raw, bool):
            number = 1.0 if raw else 0.0
        elif isinstance(raw, int | float):
            number = float(raw) * result.value_factor
        else:
            return  # a string attribute with no ``value`` in its rule
        out.append(Sample(result, number))

    def _candidates(self, bean_name: str, attr_name: str) -> tuple[Rule, ...]:
        """The rules that can match this attribute for *some* number or boolean value.

        A rule needs its literal somewhere in ``head + value`` (head = ``bean_name + attribute +
        ": "``). If the literal is not in the head, is not made of characters a Java number or
        boolean can have, and does not start with a tail of the head followed by such
        characters, no value can make the rule match. So an attribute whose value keeps
        changing is matched against the few rules left rather than all of them, with the same
        result."""
        out = []
        for rule in self._rules:
            literal = rule.literal
            if literal is None:
                out.append(rule)
                continue
            attribute = snake_case(attr_name) if rule.attr_name_snake_case else attr_name
            head = bean_name + attribute + ": "
            if rule.cache:
                if literal in head + "<cache>":
                    out.append(rule)
            elif literal in head or any(
                head.endswith(literal[:split]) for split in self._value_splits[id(rule)]
            ):
                out.append(rule)
        return tuple(out)

    def _match(
        self,
        domain: str,
        properties: dict[str, str],
        bean_name: str,
        attr_keys: tuple[str, ...],
        attr_name: str,
        description: str | None,
        value_str: str,
        candidates: tuple[Rule, ...] | None,
        attribute_labels: tuple[tuple[str, str], ...],
    ) -> object:
        # The match string has up to four spellings (snake-cased attribute, value or "<cache>");
        # each is built once, not once per rule.
        spellings: dict[tuple[bool, bool], str] = {}
        for rule in self._rules if candidates is None else candidates:
            attribute = attr_name
            if rule.attr_name_snake_case:
                attribute = self._snake.get(attr_name) or self._snake.setdefault(
                    attr_name, snake_case(attr_name)
                )
            spelling = (rule.attr_name_snake_case, rule.cache)
            match_name = spellings.get(spelling)
            if match_name is None:
                match_name = bean_name + attribute + ": " + ("<cache>" if rule.cache else value_str)
                spellings[spelling] = match_name
            match = None
            if rule.pattern is not None:
                if rule.literal is not None and rule.literal not in match_name:
                    continue
                match = rule.pattern.match(match_name)
                if match is None:
                    continue
            rule_value = None
            if rule.value is not None:
                rule_value = parse_java_double(rule.value.expand(match))
                if rule_value is None:
                    return _SKIP
            # Name, type, help and labels depend on the groups (and, for the default format, on
            # the bean), not on the value unless a group captures it: keep them across scrapes.
            if rule.name is None:
                key: tuple[object, ...] = (id(rule), bean_name, attribute, attribute_labels)
            elif id(rule) in self._uses_whole_match:
                key = (id(rule), match, attribute_labels)
            else:
                groups = match[1:] if match is not None else None
                key = (id(rule), groups, bean_name, attr_name, attribute_labels)
            slot = self._described.get(key)
            described = None if slot is None else slot[0]
            if slot is not None:
                slot[1] = self._scrape
            else:
                if rule.name is None:
                    described = self._default(
                        rule,
                        domain,
                        properties,
                        attr_keys,
                        attribute,
                        _default_help(domain, properties, attr_name, description),
                        attribute_labels,
                    )
                else:
                    described = self._describe(
                        rule, match, domain, properties, attr_name, description, attribute_labels
                    )
                self._described[key] = [described, self._scrape]
            if described is None:
                return _SKIP
            name, rule_type, help_, labels = described
            return Matched(
                name, match_name, rule_type, help_, labels, rule_value, rule.value_factor
            )
        return None

    def _describe(
        self,
        rule: Rule,
        match: Groups | None,
        domain: str,
        properties: dict[str, str],
        attr_name: str,
        description: str | None,
        attribute_labels: tuple[tuple[str, str], ...],
    ) -> _Described | None:
        config = self._config
        assert rule.name is not None
        name = safe_name(rule.name.expand(match))
        if not name:
            return None
        if config.lowercase_output_name:
            name = name.lower()
        rule_type = rule.type
        if config.infer_counter_type_from_name and name.endswith("_total"):
            rule_type = "COUNTER"
        if rule.help is not None:
            help_ = rule.help.expand(match)
        else:
            help_ = _default_help(domain, properties, attr_name, description)
        # jmx_exporter puts the attributesAsLabels first, then the rule's labels.
        labels = self._attribute_labels(attribute_labels)
        for label_name_r, label_value_r in rule.labels or ():
            label_name = safe_name(label_name_r.expand(match))
            label_value = label_value_r.expand(match)
            if config.lowercase_output_label_names:
                label_name = label_name.lower()
            if label_name and label_value:
                labels.append((label_name, label_value))
        return sanitize_metric_name(name), rule_type, help_, _label_set(labels)

    def _default(
        self,
        rule: Rule,
        domain: str,
        properties: dict[str, str],
        attr_keys: tuple[str, ...],
        attribute: str,
        help_: str,
        attribute_labels: tuple[tuple[str, str], ...],
    ) -> _Described:
        """jmx_exporter's default format: ``domain_firstPropValue_attrKeys_attrName`` and the
        other properties as labels."""
        config = self._config
        parts = [domain]
        values = iter(properties.values())
        first = next(values, None)
        if first is not None:
            parts.append(first)
        parts.extend(attr_keys)
        parts.append(attribute)
        name = safe_name("_".join(parts))
        if config.lowercase_output_name:
            name = name.lower()
        rule_type = rule.type
        if config.infer_counter_type_from_name and name.endswith("_total"):
            rule_type = "COUNTER"
        labels = []
        for i, (key, value) in enumerate(properties.items()):
            if i == 0:
                continue  # the first property is part of the name
            label = safe_name(key)
            labels.append((label.lower() if config.lowercase_output_label_names else label, value))
        labels.extend(self._attribute_labels(attribute_labels))
        return sanitize_metric_name(name), rule_type, help_, _label_set(labels)

    def _attribute_labels(
        self, attribute_labels: tuple[tuple[str, str], ...]
    ) -> list[tuple[str, str]]:
        lower = self._config.lowercase_output_label_names
        return [
            (safe_name(name).lower() if lower else safe_name(name), value)
            for name, value in attribute_labels
        ]


def _label_set(labels: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Sorted by name, as client_java prints them; a name given twice keeps its first value
    (client_java would reject the sample)."""
    seen: dict[str, str] = {}
    for name, value in labels:
        seen.setdefault(name, value)
    return tuple(sorted(seen.items()))


def _value_splits(literal: str | None) -> tuple[int, ...]:
    """Where ``literal`` could be cut into (tail of the head, start of a number/boolean).

    The head always ends with ": ", so a non-empty first part must too, and the second part may
    only have characters a Java number or boolean can have. Usually there is no such cut."""
    if literal is None:
        return ()
    splits = []
    for split in range(len(literal)):
        if not all(c in _VALUE_CHARS for c in literal[split:]):
            continue
        if split == 0 or literal[:split].endswith(": "):
            splits.append(split)
    return tuple(splits)


def _default_help(
    domain: str, properties: dict[str, str], attr_name: str, description: str | None
) -> str:
    # jmx_exporter 1.x help text; Java prints a missing property as "null".
    help_ = (
        f"{domain}:name={properties.get('name', 'null')},"
        f"type={properties.get('type', 'null')},attribute={attr_name}"
    )
    if description is not None and description != attr_name:
        help_ = description + " " + help_
    return help_


def bean_name(domain: str, properties: dict[str, str], attr_keys: Iterable[str] = ()) -> str:
    """``domain<k1=v1, k2=v2><key1, key2>``: Java's Map/List ``toString`` in angle brackets."""
    props = ", ".join(f"{k}={v}" for k, v in properties.items())
    return f"{domain}<{props}><{', '.join(attr_keys)}>"
