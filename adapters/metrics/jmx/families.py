"""Matched samples -> Prometheus metric families, as jmx_exporter 1.x groups them.

Samples with the same name form one family; its type is the rules' type when they all agree,
else unknown; its help is the first sample's. When two samples of a family have the same labels
(two beans mapped onto one series), every sample of that family gets an ``_objectname`` label
with the bean and attribute it came from. Labels are sorted by name, as client_java prints them.
"""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from adapters.metrics.jmx.rules import Sample

_PROMETHEUS_TYPES = {"GAUGE": "gauge", "COUNTER": "counter", "UNKNOWN": "unknown"}


def to_families(samples: list[Sample]) -> list[Metric]:
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample.matched.name, []).append(sample)
    families = []
    for name, group in by_name.items():
        types = {s.matched.type for s in group}
        rule_type = types.pop() if len(types) == 1 else "UNKNOWN"
        prom_type = _PROMETHEUS_TYPES[rule_type]
        family = Metric(name, group[0].matched.help, prom_type)
        sample_name = name + "_total" if prom_type == "counter" else name
        label_sets = [s.matched.labels for s in group]
        unique = len(set(label_sets)) == len(label_sets)
        for sample, labels in zip(group, label_sets, strict=True):
            if not unique:
                match_name = sample.matched.match_name
                object_name = match_name[: match_name.rfind(":")]
                labels = tuple(sorted((*labels, ("_objectname", object_name))))
            family.add_sample(sample_name, dict(labels), sample.value)
        families.append(family)
    return families
