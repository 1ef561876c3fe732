"""Java spellings: Double.toString, Double.valueOf, regex and replacement syntax, ObjectNames."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.metrics.jmx.config import parse_config
from adapters.metrics.jmx.flatten import java_double, java_string
from adapters.metrics.jmx.javaregex import (
    JavaRegexError,
    Replacement,
    compile_rule_pattern,
    required_literal,
)
from adapters.metrics.jmx.objectname import ObjectNamePattern, key_properties
from adapters.metrics.jmx.rules import (
    RuleEngine,
    Sample,
    parse_java_double,
    safe_name,
    snake_case,
)


@pytest.mark.parametrize(
    ("value", "java"),
    [
        (1.7e9, "1.7E9"),
        (200.0, "200.0"),
        (12.5, "12.5"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (123456789012.0, "1.23456789012E11"),
        (-0.5, "-0.5"),
        (-1.5e-10, "-1.5E-10"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (1.0e300, "1.0E300"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_java_double_to_string(value: float, java: str) -> None:
    assert java_double(value) == java


@pytest.mark.parametrize(
    ("value", "java"), [(True, "true"), (False, "false"), (200, "200"), (-3, "-3"), ("s", "s")]
)
def test_java_string_of_other_scalars(value: object, java: str) -> None:
    assert java_string(value) == java


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.5", 1.5), (" 2 ", 2.0), ("1e3", 1000.0), ("1.5d", 1.5), ("-Infinity", -math.inf)],
)
def test_java_double_value_of(text: str, value: float) -> None:
    assert parse_java_double(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1_000", "inf", "0x10", "1.5.5"])
def test_java_double_value_of_rejects(text: str) -> None:
    assert parse_java_double(text) is None


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("HeapMemoryUsage", "heap_memory_usage"),
        ("URLCount", "urlcount"),
        ("already_snake", "already_snake"),
        ("Count", "count"),
        ("fooBar2Baz", "foo_bar2_baz"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a-b c", "a_b_c"),
        ("a__b", "a_b"),
        ("9lives", "_9lives"),
        ("ns:name", "ns:name"),
        ("é", "_"),
    ],
)
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def _expand(pattern: str, replacement: str, subject: str) -> str:
    regex = compile_rule_pattern(pattern)
    match = regex.match(subject)
    assert match is not None
    return Replacement.parse(replacement, regex).expand(match)


@pytest.mark.parametrize(
    ("pattern", "replacement", "subject", "result"),
    [
        (r"(\w+)=(\w+)", "$1_$2", "key=value", "y_value"),  # greedy ^.* leaves one char
        (r"<(\w+)=(\w+)", "$1_$2", "<key=value", "key_value"),
        (r"<(\w+)>", "$12", "<a>", "a2"),  # $12 falls back to $1 then "2"
        (r"<(?<word>\w+)>", "${word}!", "<a>", "a!"),
        (r"<(\w+)>", r"\$1", "<a>", "$1"),
        (r"<(\w+)>(x)?", "[$2]", "<a>", "[]"),  # unmatched group is empty
        (r"\Qa.b\E", "ok", "a.b", "ok"),
    ],
)
def test_java_replacements(pattern: str, replacement: str, subject: str, result: str) -> None:
    assert _expand(pattern, replacement, subject) == result


@pytest.mark.parametrize("replacement", ["$", "$x", "${nope}", "$3", "trailing\\"])
def test_bad_replacements(replacement: str) -> None:
    with pytest.raises(JavaRegexError):
        Replacement.parse(replacement, compile_rule_pattern(r"(a)(b)"))


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("(?i)count", "x<>COUNT: 1", True),
        ("a(?i)b(c)d", "aBCD: 1", True),
        ("a(?i)b(c)d", "ABCD: 1", False),
        ("x(a(?i)b)c", "xaBc: 1", True),
        ("x(a(?i)b)c", "xaBC: 1", False),
    ],
)
def test_java_inline_flags(pattern: str, subject: str, matches: bool) -> None:
    assert (compile_rule_pattern(pattern).match(subject) is not None) is matches


def test_java_regex_classes_are_ascii() -> None:
    assert compile_rule_pattern(r"^\w+$").match("é") is None


@pytest.mark.parametrize(
    ("pattern", "literal", "subject"),
    [
        (
            r"java.lang<type=Memory><>(\w+)",
            "lang<type=Memory><>",
            "java.lang<type=Memory><>Used: 1",
        ),
        (r"java\.lang<type=Memory>", "java.lang<type=Memory>", "java.lang<type=Memory><>x: 1"),
        (r"abc?def", "def", "abdef"),
        (r"a|b", None, "b"),
        (r"(?i)Count", None, "COUNT"),
        (
            r"kafka.server<type=(.+), name=(.+)PerSec\w*><>Count",
            "server<type=",
            "kafka.server<type=B, name=BytesInPerSec><>Count: 5",
        ),
        (r".*", None, "x"),
    ],
)
def test_required_literal(pattern: str, literal: str | None, subject: str) -> None:
    assert required_literal(pattern) == literal
    # The pre-check is only an optimisation: whatever matches contains the literal.
    assert compile_rule_pattern(pattern).match(subject) is not None
    assert literal is None or literal in subject


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*:*", "a:type=b", True),
        ("java.lang:type=Memory", "java.lang:type=Memory", True),
        ("java.lang:type=Memory", "java.lang:type=Memory,x=y", False),
        ("java.lang:type=Memory,*", "java.lang:x=y,type=Memory", True),
        ("java.*:type=GarbageCollector,*", "java.lang:type=GarbageCollector,name=G1", True),
        ("java.lang:type=Garbage*,*", "java.lang:type=GarbageCollector,name=G1", True),
        ("java.lang:name=?1,*", "java.lang:type=GarbageCollector,name=G1", True),
        ('d:name="a,b",*', 'd:type=x,name="a,b"', True),
        ("d:type=x", "e:type=x", False),
    ],
)
def test_object_name_patterns(pattern: str, name: str, matches: bool) -> None:
    domain, props = name.split(":", 1)
    assert ObjectNamePattern.parse(pattern).matches(domain, key_properties(props)) is matches


def test_key_properties_keep_registration_order_and_quotes() -> None:
    assert key_properties('type=Requests,name="a,b=c",zone=eu') == {
        "type": "Requests",
        "name": '"a,b=c"',
        "zone": "eu",
    }


_PREFIXED = [
    r"ab(\w+)c(\d*)",
    r"a.b<(\w+)=(.*)>",
    r"ab+(b*)(x)?",
    r"a<(.+), (.+)><>(\w+)",
]


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(_PREFIXED),
    subject=st.text(alphabet="ab.<>=, xc01\n", max_size=30),
)
def test_literal_prefix_shortcut_matches_like_the_anchored_regex(
    pattern: str, subject: str
) -> None:
    compiled = compile_rule_pattern(pattern)
    assert compiled.prefix is not None
    reference = compiled.full.match(subject)
    expected = None if reference is None else (subject, *reference.groups())
    assert compiled.match(subject) == expected


_RULE_POOL = [
    "- pattern: 'Count: 1$'\n  name: exactly_one",
    "- pattern: ': 2'\n  name: starts_with_two",
    "- pattern: 'E9'\n  name: e_notation",
    "- pattern: 'ue: true'\n  name: yes",
    "- pattern: 'zone=eu><>(\\w+): (.*)'\n  name: eu_$1\n  labels: {v: '$2'}",
    "- pattern: 'Count'\n  name: count\n  cache: true",
    "- pattern: '.*'",
]


@settings(max_examples=60, deadline=None)
@given(
    rules=st.lists(st.sampled_from(_RULE_POOL), min_size=1, max_size=5, unique=True),
    values=st.lists(
        st.one_of(
            st.integers(-5, 300),
            st.sampled_from([1.7e9, 0.5, 2.0, True, False, 1, 2, 200]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_cached_engine_matches_a_fresh_one(rules: list[str], values: list[object]) -> None:
    """Whatever the values do between scrapes, the caches give what a cold engine gives."""
    config = parse_config(
        "jolokiaUrl: http://x.invalid/jolokia\nrules:\n" + "\n".join(rules) + "\n"
    )
    warm = RuleEngine(config)
    bean = "demo.app<type=Requests, name=api, zone=eu><>"
    props = {"type": "Requests", "name": "api", "zone": "eu"}
    for value in values:
        for attr in ("Count", "Value"):
            got: list[Sample] = []
            want: list[Sample] = []
            warm.begin()
            warm.record("demo.app", props, bean, (), attr, None, value, got)
            warm.end()
            cold = RuleEngine(config)
            cold.begin()
            cold.record("demo.app", props, bean, (), attr, None, value, want)
            cold.end()
            assert got == want


def test_rule_caches_stay_bounded_when_bean_names_churn() -> None:
    config = parse_config("jolokiaUrl: http://x.invalid/jolokia\nrules:\n- pattern: '.*'\n")
    engine = RuleEngine(config)
    for scrape in range(100):
        engine.begin()
        out: list[Sample] = []
        for i in range(10):  # ten beans per scrape, never the same names twice
            name = f"d<type=T, name=n{scrape}_{i}><>"
            engine.record("d", {"type": "T", "name": f"n{scrape}_{i}"}, name, (), "A", None, i, out)
        engine.end()
        assert len(out) == 10
    # Only the last few scrapes' entries survive the periodic sweep.
    assert len(engine._cache) <= 10 * 16
    assert len(engine._described) <= 10 * 16
