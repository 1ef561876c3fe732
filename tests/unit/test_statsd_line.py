"""The StatsD line parser against statsd_exporter's pkg/line behaviour: a table of lines, the
events they make and the errors they count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.metrics.names import escape_metric_name
from adapters.metrics.parse import COUNTER, GAUGE, OBSERVER, SET, LineParser, TagDialects
from adapters.metrics.telemetry import Telemetry

C, G, OB, S = COUNTER, GAUGE, OBSERVER, SET

# (line, [(kind, name, value, relative, labels)], {reason: count}, tag_errors)
CASES = [
    ("foo:2|c", [(C, "foo", 2.0, False, {})], {}, 0),
    ("foo:3|g", [(G, "foo", 3.0, False, {})], {}, 0),
    ("foo:+2|g", [(G, "foo", 2.0, True, {})], {}, 0),
    ("foo:-2|g", [(G, "foo", -2.0, True, {})], {}, 0),
    ("foo:200|ms", [(OB, "foo", 0.2, False, {})], {}, 0),
    ("foo:200|h", [(OB, "foo", 200.0, False, {})], {}, 0),
    ("foo:200|d", [(OB, "foo", 200.0, False, {})], {}, 0),
    ("foo:100|c|@0.1", [(C, "foo", 1000.0, False, {})], {}, 0),
    ("foo:1|g|@0.1", [(G, "foo", 1.0, False, {})], {}, 0),
    ("foo:100|ms|@0.5", [(OB, "foo", 0.1, False, {})] * 2, {}, 0),
    ("foo:100|ms|@2", [], {}, 0),
    (
        "foo:1|c|#tag1:bar,#tag2:baz",
        [(C, "foo", 1.0, False, {"tag1": "bar", "tag2": "baz"})],
        {},
        0,
    ),
    ("foo:100|c|@0.1|#tag1:bar", [(C, "foo", 1000.0, False, {"tag1": "bar"})], {}, 0),
    ("foo:100|c|#tag1:bar|@0.1", [(C, "foo", 1000.0, False, {"tag1": "bar"})], {}, 0),
    ("foo:1|c|#tag.with-dash:v", [(C, "foo", 1.0, False, {"tag_with_dash": "v"})], {}, 0),
    (
        "foo,tag1=bar,tag2=baz:100|c",
        [(C, "foo", 100.0, False, {"tag1": "bar", "tag2": "baz"})],
        {},
        0,
    ),
    ("foo,tag1=bar,:1|c", [(C, "foo", 1.0, False, {"tag1": "bar"})], {}, 0),
    ("foo,tag1=bar,,t2=x:1|c", [(C, "foo", 1.0, False, {"tag1": "bar", "t2": "x"})], {}, 1),
    (
        "foo#tag1=bar,tag2=baz:100|c",
        [(C, "foo", 100.0, False, {"tag1": "bar", "tag2": "baz"})],
        {},
        0,
    ),
    (
        "foo[tag1=bar,tag2=baz]:100|c",
        [(C, "foo", 100.0, False, {"tag1": "bar", "tag2": "baz"})],
        {},
        0,
    ),
    ("foo[tag1=bar]test:1|c", [(C, "footest", 1.0, False, {"tag1": "bar"})], {}, 0),
    ("foo[tag1=bar:1|c", [(C, "foo[tag1=bar", 1.0, False, {})], {}, 1),
    ("foo:1|c|#tag1:bar,tag2", [(C, "foo", 1.0, False, {"tag1": "bar"})], {}, 1),
    ("foo:1|c|#tag1:bar,:baz", [(C, "foo", 1.0, False, {"tag1": "bar"})], {}, 1),
    ("foo:1|c|#tag1:", [(C, "foo", 1.0, False, {})], {}, 1),
    ("foo,tag1=bar:1|c|#tag2:baz", [], {"mixed_tagging_styles": 1}, 0),
    ("foo#tag1=bar:1|c|#tag2:baz", [], {"mixed_tagging_styles": 1}, 0),
    (
        "foo:1:2:3|ms",
        [
            (OB, "foo", 0.001, False, {}),
            (OB, "foo", 0.002, False, {}),
            (OB, "foo", 0.003, False, {}),
        ],
        {},
        0,
    ),
    (
        "foo:1:2|d|#a:b",
        [(OB, "foo", 1.0, False, {"a": "b"}), (OB, "foo", 2.0, False, {"a": "b"})],
        {},
        0,
    ),
    ("foo:1:2:3|c", [], {"invalid_extended_aggregate_type": 1}, 0),
    ("foo:1:2|g", [], {"invalid_extended_aggregate_type": 1}, 0),
    ("foo:1|c:2|g", [(C, "foo", 1.0, False, {}), (G, "foo", 2.0, False, {})], {}, 0),
    (
        "foo:1|c:bad|g:3|ms",
        [(C, "foo", 1.0, False, {}), (OB, "foo", 0.003, False, {})],
        {"malformed_value": 1},
        0,
    ),
    ("foo:1|c:x", [(C, "foo", 1.0, False, {})], {"malformed_component": 1}, 0),
    ("foo", [], {"malformed_line": 1}, 0),
    (":1|c", [], {"malformed_line": 1}, 0),
    ("foo:1", [], {"not_enough_parts_after_colon": 1}, 0),
    ("foo:1|c|@0.1|#a:b|x", [], {"malformed_component": 1}, 0),
    ("foo:1|c|", [], {"malformed_component": 1}, 0),
    ("foo:abc|c", [], {"malformed_value": 1}, 0),
    ("foo:|c", [], {"malformed_value": 1}, 0),
    ("foo:1_0|c", [], {"malformed_value": 1}, 0),
    ("foo: 1|c", [], {"malformed_value": 1}, 0),
    ("foo:1|c|@abc", [(C, "foo", 1.0, False, {})], {"invalid_sample_factor": 1}, 0),
    ("foo:1|c|x", [(C, "foo", 1.0, False, {})], {"invalid_sample_factor": 1}, 0),
    ("foo:1|s", [], {"illegal_event": 1}, 0),
    ("foo:1|z", [], {"illegal_event": 1}, 0),
    ("foo:1|c|T1656581400", [(C, "foo", 1.0, False, {})], {}, 0),
    ("foo:1|c|c:abc123", [(C, "foo", 1.0, False, {"container_id": "abc123"})], {}, 0),
    (
        "foo:1|ms|#a:b|c:abc|T1656581400",
        [(OB, "foo", 0.001, False, {"a": "b", "container_id": "abc"})],
        {},
        0,
    ),
    ("", [], {}, 0),
    # More of upstream's line_test table.
    (
        "foo.[tag1=bar,tag2=baz]test:100|c",
        [(C, "foo.test", 100.0, False, {"tag1": "bar", "tag2": "baz"})],
        {},
        0,
    ),
    (
        "[tag1=bar,tag2=baz]foo.test:100|c",
        [(C, "foo.test", 100.0, False, {"tag1": "bar", "tag2": "baz"})],
        {},
        0,
    ),
    ("foo.[]test:100|c", [(C, "foo.test", 100.0, False, {})], {}, 0),
    ("foo.[tag1,tag2]test:100|c", [(C, "foo.test", 100.0, False, {})], {}, 2),
    (
        "tag1=bar,tag2=baz]foo.test:100|c",
        [(C, "tag1=bar,tag2=baz]foo.test", 100.0, False, {})],
        {},
        1,
    ),
    (
        "foo#09digits=0,tag.with.dots=1:100|c",
        [(C, "foo", 100.0, False, {"_09digits": "0", "tag_with_dots": "1"})],
        {},
        0,
    ),
    ("foo:100|c|#tag:value,,", [(C, "foo", 100.0, False, {"tag": "value"})], {}, 1),
    (
        "foo:100|c|#tag_without_a_value,tag:value",
        [(C, "foo", 100.0, False, {"tag": "value"})],
        {},
        1,
    ),
    ("foo:100|c|@0.1|#tag1:foo:bar", [(C, "foo", 1000.0, False, {"tag1": "foo:bar"})], {}, 0),
    (
        "foo_timing:0.5:120|ms|@0.5",
        [(OB, "foo_timing", 0.0005, False, {})] * 2 + [(OB, "foo_timing", 0.12, False, {})] * 2,
        {},
        0,
    ),
]


def _events(parser: LineParser, line: str) -> list[tuple[int, str, float, bool, dict[str, str]]]:
    return [(e.kind, e.name, e.value, e.relative, e.labels) for e in parser.parse(line)]


@pytest.mark.parametrize(
    ("line", "events", "errors", "tag_errors"), CASES, ids=[c[0] or "empty" for c in CASES]
)
def test_line(line: str, events: list[object], errors: dict[str, int], tag_errors: int) -> None:
    telemetry = Telemetry()
    parser = LineParser(telemetry)
    assert _events(parser, line) == events
    assert telemetry.sample_errors == errors
    assert telemetry.tag_errors == tag_errors


def test_samples_and_tags_are_counted_per_sample() -> None:
    telemetry = Telemetry()
    parser = LineParser(telemetry)
    parser.parse("foo:1|c:2|c:3|g")
    parser.parse("bar:1|c|#a:b")
    assert telemetry.samples == 4
    assert telemetry.tags == 1


def test_sets_behind_a_flag() -> None:
    parser = LineParser(Telemetry(), sets=True)
    assert [e.member for e in parser.parse("users:alice|s:42|s")] == ["alice", "42"]
    assert _events(parser, "users:42|s") == [(S, "users", 42.0, False, {})]
    assert _events(parser, "users:|s") == []


@pytest.mark.parametrize(
    ("dialects", "line", "name", "labels"),
    [
        (TagDialects(influxdb=False), "foo,a=b:1|c", "foo,a=b", {}),
        (TagDialects(librato=False), "foo#a=b:1|c", "foo#a=b", {}),
        (TagDialects(signalfx=False), "foo[a=b]:1|c", "foo[a=b]", {}),
        (TagDialects(dogstatsd=False), "foo:1|c|#a:b", "foo", {}),
        (TagDialects(dogstatsd=False), "foo:1|c|c:abc", "foo", {}),
    ],
)
def test_dialects_can_be_disabled(
    dialects: TagDialects, line: str, name: str, labels: dict[str, str]
) -> None:
    parser = LineParser(Telemetry(), dialects)
    assert _events(parser, line) == [(C, name, 1.0, False, labels)]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("clean", "clean"),
        ("0starts_with_digit", "_0starts_with_digit"),
        ("with_underscore", "with_underscore"),
        ("with--doubledash", "with_doubledash"),
        ("with---multiple-dashes", "with_multiple_dashes"),
        ("with.dot", "with_dot"),
        ("with😱emoji", "with_emoji"),
        ("with.*.multiple", "with___multiple"),
        ("test.web-server.foo.bar", "test_web_server_foo_bar"),
        ("", ""),
    ],
)
def test_name_escaping(raw: str, escaped: str) -> None:
    assert escape_metric_name(raw) == escaped


_ALPHABET = st.sampled_from(list("ab.:|#@,=[]-+0123456789cgmshdT eé\t_"))


@settings(max_examples=400, deadline=None)
@given(st.text(_ALPHABET, max_size=60))
def test_fuzz_never_raises(line: str) -> None:
    telemetry = Telemetry()
    events = LineParser(telemetry, sets=True).parse(line)
    for event in events:
        assert isinstance(event.name, str)
        assert isinstance(event.value, float)
    # Every sample either became events or was counted as an error (or gave none: rate > 1).
    assert telemetry.samples >= 0
