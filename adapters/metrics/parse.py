"""StatsD line → events, exactly as statsd_exporter's ``pkg/line`` parses it.

One line can carry several samples (``a:1|c:2|g``, DogStatsD extended aggregates ``a:1:2:3|ms``),
and a sample can become several events (``|@0.1`` on a timer repeats it ten times). Every bad
line, sample or tag is counted under upstream's ``reason`` and dropped; the caller keeps going
with the next line.

This is the slow path: the ingest stage calls it once per new line *shape* and caches the outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adapters.metrics.names import escape_metric_name
from adapters.metrics.telemetry import Telemetry

COUNTER = 0
GAUGE = 1
OBSERVER = 2
SET = 3

# The names mapping rules use in ``match_metric_type``.
TYPE_NAMES = ("counter", "gauge", "observer", "set")


class Event:
    """One update for one metric. ``relative`` is set for gauge deltas (``+3|g``); ``divisor``
    is what the raw value was divided by (the sample rate of a counter, 1000 for a timer), so the
    ingest stage can redo the same arithmetic for the next line of the same shape."""

    __slots__ = ("divisor", "kind", "labels", "member", "name", "relative", "value")

    def __init__(
        self,
        kind: int,
        name: str,
        value: float,
        relative: bool,
        labels: dict[str, str],
        divisor: float = 1.0,
        member: str = "",
    ) -> None:
        self.kind = kind
        self.name = name
        self.value = value
        self.relative = relative
        self.labels = labels
        self.divisor = divisor
        # A StatsD set member is any string (a user id, an IP), not a number.
        self.member = member

    def __repr__(self) -> str:
        return (
            f"Event({TYPE_NAMES[self.kind]}, {self.name!r}, {self.value!r}, "
            f"relative={self.relative}, labels={self.labels!r})"
        )


@dataclass(frozen=True)
class TagDialects:
    """Which tag syntaxes to recognise (``--statsd.parse-*-tags``); all on by default."""

    dogstatsd: bool = True
    influxdb: bool = True
    librato: bool = True
    signalfx: bool = True


def parse_float(text: str) -> float:
    """Go's ``strconv.ParseFloat`` for the inputs StatsD clients send.

    Python's ``float`` is more lenient (surrounding blanks, ``1_000``); those are refused so a
    value means here what it means upstream."""
    value = float(text)
    if "_" in text or text[0] <= " " or text[-1] <= " ":
        raise ValueError(text)
    return value


class LineParser:
    def __init__(
        self, telemetry: Telemetry, dialects: TagDialects = TagDialects(), sets: bool = False
    ) -> None:
        self.telemetry = telemetry
        self.dialects = dialects
        # Sets are rejected like upstream unless --statsd.enable-sets is given.
        self.sets = sets

    # -- tags -----------------------------------------------------------------------------

    def _tag(self, tag: str, separator: str, labels: dict[str, str]) -> None:
        if not tag:
            self.telemetry.tag_errors += 1
            return
        key, found, value = tag.partition(separator)
        if not found or not key or not value:
            self.telemetry.tag_errors += 1
            return
        labels[escape_metric_name(key)] = value

    def _name_tags(self, component: str, labels: dict[str, str]) -> None:
        # A trailing comma does not make an empty tag (upstream only parses a last, non-empty
        # remainder), but an empty tag in the middle does.
        parts = component.split(",")
        if parts and parts[-1] == "":
            parts.pop()
        for tag in parts:
            self._tag(tag, "=", labels)

    def _dogstatsd_tags(self, component: str, labels: dict[str, str]) -> None:
        if not self.dialects.dogstatsd:
            return
        parts = component.split(",")
        if parts and parts[-1] == "":
            parts.pop()
        for tag in parts:
            self._tag(tag[1:] if tag.startswith("#") else tag, ":", labels)

    def _name_and_tags(self, name: str, labels: dict[str, str]) -> str:
        dialects = self.dialects
        if dialects.signalfx:
            start = name.find("[")
            end = name.find("]")
            if start != -1 and end != -1:
                self._name_tags(name[start + 1 : end], labels)
                return name[:start] + name[end + 1 :]
            if (start != -1) != (end != -1):
                self.telemetry.tag_errors += 1
                return name
        for i, char in enumerate(name):
            if (char == "#" and dialects.librato) or (char == "," and dialects.influxdb):
                self._name_tags(name[i + 1 :], labels)
                return name[:i]
        return name

    # -- lines ----------------------------------------------------------------------------

    def parse(self, line: str) -> list[Event]:
        """All events of one line (``[]`` for an empty or bad line; errors are counted)."""
        events: list[Event] = []
        if not line:
            return events
        telemetry = self.telemetry
        name_part, found, rest = line.partition(":")
        if not found or not name_part:
            # Lines that are not UTF-8 never get here: the source counts them as malformed.
            telemetry.sample_error("malformed_line")
            return events

        labels: dict[str, str] = {}
        metric = self._name_and_tags(name_part, labels)
        dogstatsd = "|#" in rest
        if dogstatsd and labels:
            telemetry.sample_error("mixed_tagging_styles")
            return events

        line_parts = rest.split("|", 2)
        if len(line_parts) < 2:
            telemetry.sample_error("not_enough_parts_after_colon")
            return events
        if ":" in line_parts[0]:
            # DogStatsD extended aggregates: one type, several values.
            if line_parts[1] not in ("ms", "h", "d"):
                telemetry.sample_error("invalid_extended_aggregate_type")
                return events
            suffix = rest.partition("|")[2]
            samples = [f"{value}|{suffix}" for value in line_parts[0].split(":")]
        elif dogstatsd or ("|c:" in rest and _has_container_id(rest)):
            # Tags and container ids contain ':', so such a line carries one sample only.
            samples = [rest]
        else:
            samples = rest.split(":")

        for sample in samples:
            self._sample(sample, metric, labels, events)
        return events

    def _sample(
        self, sample: str, metric: str, labels: dict[str, str], events: list[Event]
    ) -> None:
        telemetry = self.telemetry
        telemetry.samples += 1
        components = sample.split("|")
        # Container ids (|c:) and timestamps (|T) are DogStatsD 1.2/1.3 fields: they do not count
        # against upstream's limit of four components.
        extras = sum(1 for c in components[2:] if c.startswith(("c:", "T")))
        if not 2 <= len(components) - extras <= 4:
            telemetry.sample_error("malformed_component")
            return
        value_text, stat_type = components[0], components[1]
        relative = value_text.startswith(("+", "-"))
        try:
            value = parse_float(value_text)
        except (ValueError, IndexError):
            if not (stat_type == "s" and self.sets and value_text):
                telemetry.sample_error("malformed_value")
                return
            value = 0.0

        repeat = 1
        rate = 1.0
        if len(components) > 2:
            if any(not c for c in components[2:]):
                telemetry.sample_error("malformed_component")
                return
            for component in components[2:]:
                head = component[0]
                if head == "@":
                    try:
                        factor = parse_float(component[1:])
                    except (ValueError, IndexError):
                        telemetry.sample_error("invalid_sample_factor")
                        factor = 0.0
                    if factor == 0:
                        factor = 1.0
                    if stat_type == "c":
                        rate *= factor
                    elif stat_type in ("ms", "h", "d"):
                        repeat = _repeat_count(factor)
                elif head == "#":
                    self._dogstatsd_tags(component[1:], labels)
                elif component.startswith("c:") and len(component) > 2:
                    if self.dialects.dogstatsd:
                        labels["container_id"] = component[2:]
                elif head == "T":
                    pass  # client-side timestamps: Prometheus stamps at scrape time
                else:
                    telemetry.sample_error("invalid_sample_factor")

        if labels:
            telemetry.tags += 1

        kind, divisor = _STAT_TYPES.get(stat_type, (-1, 1.0))
        if kind == COUNTER:
            divisor = rate
        if kind == SET and not self.sets:
            kind = -1
        for _ in range(repeat):
            if kind < 0:
                telemetry.sample_error("illegal_event")
                continue
            # Each event gets its own copy: a mapping may later add labels to it.
            events.append(
                Event(kind, metric, value / divisor, relative, dict(labels), divisor, value_text)
            )


def _has_container_id(rest: str) -> bool:
    """A DogStatsD ``|c:<id>`` field, told apart from a multi-metric line whose next sample
    follows a counter (``1|c:2|g``): the id is never at the type's position, and it is the last
    field or followed by another extension field."""
    parts = rest.split("|")
    last = len(parts) - 1
    for i in range(2, last + 1):
        if parts[i].startswith("c:") and (i == last or parts[i + 1][:1] in ("T", "#", "@")):
            return True
    return False


def _repeat_count(factor: float) -> int:
    # Go's int(1/factor): truncation toward zero, so a rate above 1 gives no event at all.
    inverse = 1 / factor
    if math.isnan(inverse) or math.isinf(inverse):
        return 0
    return max(int(inverse), 0)


# Timers are milliseconds in StatsD and seconds in Prometheus.
_STAT_TYPES: dict[str, tuple[int, float]] = {
    "c": (COUNTER, 1.0),
    "g": (GAUGE, 1.0),
    "ms": (OBSERVER, 1000.0),
    "h": (OBSERVER, 1.0),
    "d": (OBSERVER, 1.0),
    "s": (SET, 1.0),
}
