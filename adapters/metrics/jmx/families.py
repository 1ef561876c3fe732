"""Matched samples -> Prometheus metric families, as jmx_exporter 1.x groups them.

Samples with the same name form one family; its type is the rules' type when they all agree,
else unknown. When two samples of a family have the same labels (two beans mapped onto one
series), every sample of that family gets an ``_objectname`` label with the bean and attribute
it came from. As client_java 1.x does, families are sorted by name, samples by labels and labels
by name, so the output does not depend on the order Jolokia lists beans in (the family's help is
its first sample's).
"""

from __future__ import annotations

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample as PromSample

from adapters.metrics.jmx.rules import Sample

_PROMETHEUS_TYPES = {"GAUGE": "gauge", "COUNTER": "counter", "UNKNOWN": "unknown"}


def to_families(samples: list[Sample]) -> list[Metric]:
    # One pass groups by name and notes whether the rules' types agree.
    by_name: dict[str, tuple[list[str], list[Sample]]] = {}
    for sample in samples:
        matched = sample.matched
        entry = by_name.get(matched.name)
        if entry is None:
            by_name[matched.name] = ([matched.type], [sample])
            continue
        if entry[0][0] != matched.type:
            entry[0][0] = "UNKNOWN"
        entry[1].append(sample)
    families = []
    for name in sorted(by_name):
        rule_types, group = by_name[name]
        prom_type = _PROMETHEUS_TYPES[rule_types[0]]
        sample_name = name + "_total" if prom_type == "counter" else name
        label_sets = [s.matched.labels for s in group]
        if len(set(label_sets)) != len(label_sets):
            label_sets = [
                tuple(sorted((*labels, ("_objectname", _object_name(s)))))
                for s, labels in zip(group, label_sets, strict=True)
            ]
        ordered = sorted(zip(label_sets, group, strict=True), key=lambda pair: pair[0])
        family = Metric(name, ordered[0][1].matched.help, prom_type)
        # Appending Sample tuples directly: add_sample per series is measurable at 1 000s.
        family.samples = [
            PromSample(sample_name, dict(labels), sample.value) for labels, sample in ordered
        ]
        families.append(family)
    return families


def _object_name(sample: Sample) -> str:
    # jmx_exporter: the match string up to its last ":" (bean name and attribute).
    match_name = sample.matched.match_name
    return match_name[: match_name.rfind(":")]
