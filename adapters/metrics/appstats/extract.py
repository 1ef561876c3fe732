"""A parsed stats document + a module's metric rules -> samples, as json_exporter does.

``type: value``: the path's (first) result is the value, labels are templates over the whole
document. ``type: object``: every object the path finds yields one sample per ``values`` entry,
named ``<name>_<key>``, with labels and values evaluated relative to that object. Values are
numbers, booleans (1/0), numeric strings, or strings the ``valueconverter`` maps; anything else
yields no sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from adapters.metrics.appstats.config import MetricRule
from adapters.metrics.appstats.jsonpath import Template


@dataclass(frozen=True, slots=True)
class Sample:
    rule: MetricRule
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp: float | None = None  # seconds since the epoch, from ``epochTimestamp``


def extract(
    rules: tuple[MetricRule, ...], document: Any, static_labels: tuple[tuple[str, str], ...]
) -> list[Sample]:
    out: list[Sample] = []
    for rule in rules:
        found = rule.path.find(document)
        if rule.kind == "value":
            if not found:
                continue
            value = _number(found[0], rule)
            labels = _labels(rule.labels, document, static_labels)
            if value is not None and labels is not None:
                out.append(Sample(rule, rule.name, labels, value, _timestamp(rule, document)))
            continue
        for item in _objects(found):
            labels = _labels(rule.labels, item, static_labels)
            if labels is None:
                continue
            timestamp = _timestamp(rule, item)
            for key, template in rule.values:
                value = _template_number(template, item, rule)
                if value is not None:
                    out.append(Sample(rule, f"{rule.name}_{key}", labels, value, timestamp))
    return out


def _timestamp(rule: MetricRule, node: Any) -> float | None:
    """json_exporter's ``epochTimestamp``: a field with milliseconds since the epoch."""
    if rule.epoch_timestamp is None:
        return None
    found = rule.epoch_timestamp.find(node)
    millis = _number(found[0], rule) if found else None
    return None if millis is None or math.isnan(millis) else millis / 1000.0


def _objects(found: list[Any]) -> list[Any]:
    # "{.items}" finds the array itself; "{.items[*]}" its elements: accept both.
    if len(found) == 1 and isinstance(found[0], list):
        return list(found[0])
    return found


def _labels(
    templates: tuple[tuple[str, Template], ...],
    node: Any,
    static_labels: tuple[tuple[str, str], ...],
) -> tuple[tuple[str, str], ...] | None:
    labels = dict(static_labels)
    for name, template in templates:
        value = template.render(node)
        if value is None:
            return None  # a label's path found nothing: json_exporter skips the sample
        labels[name] = value
    return tuple(sorted(labels.items()))


def _template_number(template: Template, node: Any, rule: MetricRule) -> float | None:
    if len(template.parts) == 1 and not isinstance(template.parts[0], str):
        found = template.parts[0].find(node)
        return _number(found[0], rule) if found else None
    text = template.render(node)
    return None if text is None else _number(text, rule)


def _number(value: Any, rule: MetricRule) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        converted = rule.converter.get(value.lower())
        if converted is not None:
            return converted
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if not math.isnan(number) or value.strip().lower() == "nan" else None
    return None
