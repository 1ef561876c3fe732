"""statsd_exporter mapping files: matching semantics and config validation."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.metrics.errors import ConfigError
from adapters.metrics.mapping import (
    DEFAULT_BUCKETS,
    Mapper,
    expand_template,
    parse_mapping,
)
from adapters.metrics.parse import COUNTER, GAUGE, OBSERVER
from adapters.metrics.telemetry import Telemetry

UPSTREAM_EXAMPLE = """
mappings:
- match: test.dispatcher.*.*.*
  name: "dispatcher_events_total"
  labels:
    processor: "$1"
    action: "$2"
    outcome: "$3"
    job: "test_dispatcher"
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${1}_server"
"""


def mapper(yaml_text: str, **kwargs: object) -> Mapper:
    return Mapper(parse_mapping(textwrap.dedent(yaml_text)), Telemetry(), **kwargs)  # type: ignore[arg-type]


def mapped(m: Mapper, name: str, kind: int = COUNTER) -> tuple[str, dict[str, str]] | None:
    result = m.map(name, kind)
    return None if result is None else (result.name, dict(result.labels))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "test.dispatcher.FooProcessor.send.success",
            (
                "dispatcher_events_total",
                {
                    "processor": "FooProcessor",
                    "action": "send",
                    "outcome": "success",
                    "job": "test_dispatcher",
                },
            ),
        ),
        (
            "foo_product.signup.facebook.failure",
            (
                "signup_events_total",
                {"provider": "facebook", "outcome": "failure", "job": "foo_product_server"},
            ),
        ),
        ("test.web-server.foo.bar", None),
        # '*' spans exactly one component: one more or one fewer does not match.
        ("test.dispatcher.FooProcessor.send", None),
        ("test.dispatcher.FooProcessor.send.success.extra", None),
    ],
)
def test_upstream_readme_example(name: str, expected: object) -> None:
    assert mapped(mapper(UPSTREAM_EXAMPLE), name) == expected


def test_first_glob_wins() -> None:
    m = mapper(
        """
        mappings:
        - match: a.*.c
          name: first
        - match: a.b.c
          name: second
        - match: a.b.*
          name: third
        """
    )
    assert mapped(m, "a.b.c") == ("first", {})
    assert mapped(m, "a.b.d") == ("third", {})


def test_glob_disable_ordering_prefers_literals() -> None:
    m = mapper(
        """
        defaults:
          glob_disable_ordering: true
        mappings:
        - match: a.*.c
          name: wild
        - match: a.b.*
          name: literal_first
        """
    )
    assert mapped(m, "a.b.c") == ("literal_first", {})
    assert mapped(m, "a.x.c") == ("wild", {})


def test_globs_before_regexes() -> None:
    m = mapper(
        r"""
        mappings:
        - match: 'a\.(.*)'
          match_type: regex
          name: regex_${1}
        - match: a.*
          name: glob_$1
        """
    )
    assert mapped(m, "a.b") == ("glob_b", {})
    assert mapped(m, "a.b.c") == ("regex_b.c", {})


def test_regex_is_unanchored_with_named_groups() -> None:
    m = mapper(
        r"""
        mappings:
        - match: (.*)\.(.*)--(.*)\.status\.(?P<code>.*)\.count
          match_type: regex
          name: request_total
          labels:
            hostname: $1
            exec: $2
            protocol: ${3}
            code: ${code}
        """
    )
    assert mapped(m, "x.web1.nginx--http.status.200.count") == (
        "request_total",
        {"hostname": "x.web1", "exec": "nginx", "protocol": "http", "code": "200"},
    )


def test_match_metric_type() -> None:
    m = mapper(
        """
        mappings:
        - match: test.foo.*
          name: test_foo_counter
          match_metric_type: counter
        - match: test.foo.*
          name: test_foo_timer
          match_metric_type: timer
        - match: test.foo.*
          name: test_foo_other
        """
    )
    assert mapped(m, "test.foo.x", COUNTER) == ("test_foo_counter", {})
    assert mapped(m, "test.foo.x", OBSERVER) == ("test_foo_timer", {})
    assert mapped(m, "test.foo.x", GAUGE) == ("test_foo_other", {})


@pytest.mark.parametrize(
    ("template", "groups", "expected"),
    [
        ("$1", ["a"], "a"),
        ("${1}_total", ["a"], "a_total"),
        ("$1_total", ["a"], ""),  # Go: the reference is "1_total", which does not exist
        ("x_$2", ["a"], "x_"),
        ("$$1", ["a"], "$1"),
        ("plain", ["a"], "plain"),
        ("${1}${2}", ["a", "b"], "ab"),
    ],
)
def test_template_expansion_like_go(template: str, groups: list[str], expected: str) -> None:
    assert expand_template(template, groups) == expected


def test_defaults_and_rule_options() -> None:
    config = parse_mapping(
        textwrap.dedent(
            """
            defaults:
              observer_type: histogram
              histogram_options:
                buckets: [1, 2, 3]
                native_histogram_bucket_factor: 1.1
              ttl: 1m20s
            mappings:
            - match: a.*
              name: a
            - match: b.*
              name: b
              observer_type: summary
              summary_options:
                quantiles: [{quantile: 0.5, error: 0.01}]
                max_age: 30s
              ttl: 500ms
              help: "B help"
              honor_labels: true
              scale: 0.5
            - match: c.*
              name: c
              timer_type: histogram
              buckets: [0.1]
            - match: d.*
              action: drop
              name: dropped
            """
        )
    )
    a, b, c, d = config.rules
    assert (a.observer_type, a.buckets, a.ttl) == ("histogram", (1.0, 2.0, 3.0), 80.0)
    assert (b.observer_type, b.summary.quantiles, b.summary.max_age, b.ttl) == (
        "summary",
        ((0.5, 0.01),),
        30.0,
        0.5,
    )
    assert (b.help, b.honor_labels, b.scale) == ("B help", True, 0.5)
    assert (c.observer_type, c.buckets) == ("histogram", (0.1,))
    assert d.action == "drop"
    assert parse_mapping("mappings: []").buckets == DEFAULT_BUCKETS
    assert parse_mapping("").rules == ()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("mappings:\n- match: a.b\n  name: x\n  lables: {}\n", "unknown key 'lables'"),
        ("mapping:\n- match: a.b\n", "unknown key 'mapping'"),
        ("defaults:\n  timer: histogram\n", "unknown key 'timer'"),
        ("defaults:\n  summary_options:\n    maxage: 1s\n", "unknown key 'maxage'"),
        (
            "mappings:\n- match: a.b\n  name: x\n  histogram_options: {bucket: [1]}\n",
            "unknown key 'bucket'",
        ),
        ("mappings:\n- match: a.b\n", "didn't set a metric name"),
        ("mappings:\n- match: a.b*\n  name: x\n", "invalid match"),
        ("mappings:\n- match: a..b\n  name: x\n", "invalid match"),
        ("mappings:\n- match: '(a'\n  match_type: regex\n  name: x\n", "invalid regex"),
        ("mappings:\n- match: a.b\n  name: x\n  match_type: fuzzy\n", "invalid match_type"),
        ("mappings:\n- match: a.b\n  name: 'bad-name'\n", "not a valid Prometheus name"),
        ("mappings:\n- match: a.b\n  name: x\n  labels: {'bad-key': v}\n", "invalid label key"),
        ("mappings:\n- match: a.b\n  name: x\n  action: keep\n", "invalid action"),
        ("mappings:\n- match: a.b\n  name: x\n  observer_type: gauge\n", "invalid observer_type"),
        (
            "mappings:\n- match: a.b\n  name: x\n  match_metric_type: set\n",
            "invalid match_metric_type",
        ),
        ("mappings:\n- match: a.b\n  name: x\n  ttl: 5 minutes\n", "invalid duration"),
        ("mappings:\n- match: a.b\n  name: x\n  buckets: [2, 1]\n", "increasing order"),
        (
            "mappings:\n- match: a.b\n  name: x\n"
            "  observer_type: histogram\n  summary_options: {}\n",
            "cannot use histogram observer and summary options",
        ),
        ("mappings: {a: b}\n", "must be a list"),
        ("mappings:\n- [a]\n", "must be a mapping"),
        ("mappings: [\n", "not valid YAML"),
    ],
)
def test_bad_configs_are_refused_with_one_readable_line(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_mapping(yaml_text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_cache_counts_hits_and_stays_bounded() -> None:
    m = mapper(UPSTREAM_EXAMPLE, cache_size=2)
    for name in ("a.b", "a.b", "c.d", "e.f", "a.b"):
        m.map(name, COUNTER)
    assert m.telemetry.mapper_cache_gets == 5
    assert m.telemetry.mapper_cache_hits == 1
    assert m.telemetry.mapper_cache_length == 2


def test_random_cache_is_bounded_and_consistent() -> None:
    m = mapper(UPSTREAM_EXAMPLE, cache_size=3, cache_type="random")
    for i in range(50):
        assert mapped(m, f"x{i}.signup.p.ok") == (
            "signup_events_total",
            {"provider": "p", "outcome": "ok", "job": f"x{i}_server"},
        )
    assert m.telemetry.mapper_cache_length == 3


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.sampled_from(list("ab.*-_")), max_size=20),
    st.text(st.sampled_from(list("ab.x-")), max_size=20),
)
def test_fuzz_glob_rules_never_crash(pattern: str, name: str) -> None:
    try:
        m = mapper(f"mappings:\n- match: '{pattern}'\n  name: n_$1\n")
    except ConfigError:
        return
    result = m.map(name, COUNTER)
    if result is not None:
        assert len(name.split(".")) == len(pattern.split("."))


UPSTREAM_TABLE = r"""
mappings:
- match: request_time.*.*.*
  name: "tyk_http_request"
  labels:
    method_and_path: "${1}"
    response_code: "${2}"
    oauthid: "${3}"
- match: "*.*"
  name: "catchall"
  labels:
    first: "$1"
    second: "$2"
    third: "$3"
    job: "$1-$2-$3"
- match: (.*)\.(.*)-(.*)\.(.*)
  match_type: regex
  name: "proxy_requests_total"
  labels:
    job: "$1"
    protocol: "$2"
    endpoint: "$3"
    result: "$4"
- match: test1.*.*
  name: "$1"
- match: test2.*.*
  name: "${1}_$2"
- match: test3\.(\w+)\.(\w+)
  match_type: regex
  name: "${2}_$1"
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "request_time.get/threads.200.",  # a trailing empty component still counts
            (
                "tyk_http_request",
                {"method_and_path": "get/threads", "response_code": "200", "oauthid": ""},
            ),
        ),
        (
            "foo.bar",
            ("catchall", {"first": "foo", "second": "bar", "third": "", "job": "foo-bar-"}),
        ),
        ("foo.bar.baz", None),
        (
            "proxy-1.http-goober.success",
            (
                "proxy_requests_total",
                {"job": "proxy-1", "protocol": "http", "endpoint": "goober", "result": "success"},
            ),
        ),
        ("test1.total_requests.count", ("total_requests", {})),
        ("test2.total_requests.count", ("total_requests_count", {})),
        ("test3.total_requests.count", ("count_total_requests", {})),
    ],
)
def test_upstream_mapper_table(name: str, expected: object) -> None:
    assert mapped(mapper(UPSTREAM_TABLE), name) == expected


def test_upstream_backtracking_without_ordering() -> None:
    m = mapper(
        """
        defaults:
          glob_disable_ordering: true
        mappings:
        - match: backtrack.*.bbb
          name: testb
          labels: {label: "${1}_foo"}
        - match: backtrack.justatest.aaa
          name: testa
          labels: {label: "${1}_foo"}
        """
    )
    assert mapped(m, "backtrack.good.bbb") == ("testb", {"label": "good_foo"})
    assert mapped(m, "backtrack.justatest.bbb") == ("testb", {"label": "justatest_foo"})
    assert mapped(m, "backtrack.justatest.aaa") == ("testa", {"label": "_foo"})


@pytest.mark.parametrize(
    "yaml_text",
    [
        "mappings:\n- match: bad--metric-line.*.*\n  name: foo\n",
        "mappings:\n- match: test.*.*\n  name: '0foo'\n",
        "mappings:\n- match: *.test.*\n  name: name\n",  # YAML alias: needs quoting, as upstream
        "mappings:\n- match: test.*.*\n  timer_type: wrong\n  name: foo\n",
    ],
)
def test_upstream_bad_configs(yaml_text: str) -> None:
    with pytest.raises(ConfigError):
        parse_mapping(yaml_text)
