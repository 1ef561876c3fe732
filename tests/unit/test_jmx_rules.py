"""jmx_exporter rule semantics, table-driven: a config and some beans in, series out.

Beans are served by an in-process fake Jolokia; everything else (config parsing, flattening,
rules, families, exposition) is the real code path of ``JmxSource.collect``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.metrics.jmx.config import parse_config
from adapters.metrics.jmx.source import JmxSource
from tests.fixtures.exposition import render, series, types
from tests.fixtures.fake_jolokia import FakeJolokia

URL = "jolokiaUrl: http://jolokia.invalid:8778/jolokia\n"

MEMORY = {
    "java.lang:type=Memory": {
        "HeapMemoryUsage": {"committed": 100, "init": 50, "max": 1000, "used": 42},
        "Verbose": False,
        "ObjectPendingFinalizationCount": 0,
    }
}
REQUESTS = {
    "demo.app:type=Requests,name=api,zone=eu": {
        "Count": 200,
        "BytesSent": 1.7e9,
        "LatencyMillis": 12.5,
        "Active": True,
        "Status": "running",
    },
    "demo.app:type=Requests,name=admin,zone=us": {
        "Count": 7,
        "BytesSent": 0.0001,
        "LatencyMillis": 3.0,
        "Active": False,
        "Status": "stopped",
    },
}
TABULAR_TYPES = {
    "demo.app:type=Cache,name=users": {"Shards": "javax.management.openmbean.TabularData"},
    "demo.app:type=Regions": {"Entries": "javax.management.openmbean.TabularData"},
}
CACHE = {
    "demo.app:type=Cache,name=users": {
        "Shards": {
            "s1": {"shard": "s1", "size": 100, "evictions": 1},
            "s2": {"shard": "s2", "size": 200, "evictions": 2},
        },
    },
    "demo.app:type=Regions": {"Entries": {"eu": 5, "us": 7}},
}


def scrape(
    config: str,
    beans: Mapping[str, Mapping[str, Any]],
    bean_types: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    fake = FakeJolokia(beans, bean_types)
    source = JmxSource(
        "test.yml", parse_config(URL + textwrap.dedent(config)), transport=fake.transport
    )

    async def run() -> str:
        try:
            return render(await source.collect())
        finally:
            await source.close()

    return asyncio.run(run())


def jmx_series(text: str) -> dict[str, float]:
    """The exported series without the exporter's own jmx_* metrics."""
    return {k: v for k, v in series(text).items() if not k.startswith("jmx_")}


# (id, config, beans, expected series: exactly these, besides jmx_*)
CASES: list[tuple[str, str, Mapping[str, Mapping[str, Any]], dict[str, float]]] = [
    (
        "default format: domain, first property, composite keys, attribute",
        "includeObjectNames: ['java.lang:type=Memory']",
        MEMORY,
        {
            "java_lang_Memory_HeapMemoryUsage_committed": 100,
            "java_lang_Memory_HeapMemoryUsage_init": 50,
            "java_lang_Memory_HeapMemoryUsage_max": 1000,
            "java_lang_Memory_HeapMemoryUsage_used": 42,
            "java_lang_Memory_Verbose": 0,
            "java_lang_Memory_ObjectPendingFinalizationCount": 0,
        },
    ),
    (
        "default format: further properties become labels, strings are skipped",
        """
        rules:
        - pattern: 'Count'
        """,
        REQUESTS,
        {
            'demo_app_Requests_Count{name="api",zone="eu"}': 200,
            'demo_app_Requests_Count{name="admin",zone="us"}': 7,
        },
    ),
    (
        "name and labels from groups; first matching rule wins",
        r"""
        rules:
        - pattern: 'demo.app<type=(\w+), name=(\w+), zone=(\w+)><>Count: (\d+)'
          name: demo_$1_count
          labels: {endpoint: $2, zone: "$3"}
        - pattern: '.*'
          name: everything_else
          labels: {attr: x}
        """,
        {"demo.app:type=Requests,name=api,zone=eu": {"Count": 200, "Active": True}},
        {
            'demo_Requests_count{endpoint="api",zone="eu"}': 200,
            'everything_else{attr="x"}': 1,
        },
    ),
    (
        "numbers in the match string are spelled as Java prints them",
        r"""
        rules:
        - pattern: 'BytesSent: 1.7E9'
          name: e_notation
        - pattern: 'BytesSent: 1.0E-4'
          name: small_e_notation
        - pattern: 'Count: 200$'
          name: long_without_fraction
        - pattern: 'LatencyMillis: 3.0'
          name: double_with_fraction
        - pattern: 'Active: (true|false)'
          name: boolean_$1
        """,
        REQUESTS,
        {
            "e_notation": 1.7e9,
            "small_e_notation": 0.0001,
            "long_without_fraction": 200,
            "double_with_fraction": 3.0,
            "boolean_true": 1,
            "boolean_false": 0,
        },
    ),
    (
        "value from the rule and valueFactor; booleans ignore the factor",
        r"""
        rules:
        - pattern: 'name=api.*Status: (\w+)'
          name: status_$1
          value: 1
        - pattern: 'name=api.*LatencyMillis'
          name: latency_seconds
          valueFactor: 0.001
        - pattern: 'name=api.*Active'
          name: active
          valueFactor: 10
        """,
        REQUESTS,
        {"status_running": 1, "latency_seconds": 0.0125, "active": 1},
    ),
    (
        "a value that does not parse as a number exports nothing",
        r"""
        rules:
        - pattern: 'name=api.*Status: (\w+)'
          name: status
          value: $1
        """,
        REQUESTS,
        {},
    ),
    (
        "attrNameSnakeCase: the attribute name (not composite keys) is snake-cased",
        r"""
        rules:
        - pattern: 'java.lang<type=Memory><>(object_pending_finalization_count)'
          name: jvm_$1
          attrNameSnakeCase: true
        - pattern: 'java.lang<type=Memory><HeapMemoryUsage>used'
          attrNameSnakeCase: true
        - pattern: 'java.lang<type=Memory><>verbose'
          attrNameSnakeCase: true
        """,
        MEMORY,
        {
            "jvm_object_pending_finalization_count": 0,
            "java_lang_Memory_HeapMemoryUsage_used": 42,
            "java_lang_Memory_verbose": 0,
        },
    ),
    (
        "lowercaseOutputName and lowercaseOutputLabelNames",
        r"""
        lowercaseOutputName: true
        lowercaseOutputLabelNames: true
        rules:
        - pattern: 'demo.app<type=(\w+), name=(\w+), zone=eu><>(Count)'
          name: Demo_$1_$3
          labels: {EndPoint: $2}
        - pattern: 'demo.app<type=Requests, name=admin, zone=us><>Count'
        """,
        REQUESTS,
        {
            'demo_requests_count{endpoint="api"}': 200,
            'demo_app_requests_count{name="admin",zone="us"}': 7,
        },
    ),
    (
        "tabular data: index values become labels, each column a name part",
        """
        includeObjectNames: ['demo.app:type=Cache,*']
        """,
        CACHE,
        {
            'demo_app_Cache_Shards_size{name="users",shard="s1"}': 100,
            'demo_app_Cache_Shards_size{name="users",shard="s2"}': 200,
            'demo_app_Cache_Shards_evictions{name="users",shard="s1"}': 1,
            'demo_app_Cache_Shards_evictions{name="users",shard="s2"}': 2,
        },
    ),
    (
        "tabular data: an MXBean map gives a key label and keeps the attribute name",
        r"""
        includeObjectNames: ['demo.app:type=Regions']
        rules:
        - pattern: 'demo.app<type=Regions, key=(\w+)><>Entries: (\d+)'
          name: region_entries
          labels: {region: $1}
        """,
        CACHE,
        {'region_entries{region="eu"}': 5, 'region_entries{region="us"}': 7},
    ),
    (
        "same name and labels from two beans: _objectname tells them apart",
        """
        rules:
        - pattern: 'Count'
          name: requests
        """,
        REQUESTS,
        {
            'requests{_objectname="demo.app<type=Requests, name=api, zone=eu><>Count"}': 200,
            'requests{_objectname="demo.app<type=Requests, name=admin, zone=us><>Count"}': 7,
        },
    ),
    (
        "names are sanitised: illegal characters and runs of _ become one _, digits prefixed",
        r"""
        rules:
        - pattern: 'name=api.*Count'
          name: 9 weird-name__with..dots
        - pattern: 'name=admin.*Count'
          name: ok
          labels: {"la-bel": "v", "empty": ""}
        """,
        REQUESTS,
        {"_9_weird_name_with_dots": 200, 'ok{la_bel="v"}': 7},
    ),
    (
        "includeObjectNames and excludeObjectNames (and the old names) filter beans",
        """
        whitelistObjectNames: ['demo.app:type=Requests,*']
        blacklistObjectNames: ['demo.app:zone=us,*']
        rules:
        - pattern: 'Count'
          name: requests
          labels: {bean: "$0"}
        """,
        {**REQUESTS, **MEMORY},
        {'requests{bean="demo.app<type=Requests, name=api, zone=eu><>Count: 200"}': 200},
    ),
    (
        "excludeObjectNameAttributes drops single attributes",
        """
        includeObjectNames: ['java.lang:type=Memory']
        excludeObjectNameAttributes:
          "java.lang:type=Memory": [HeapMemoryUsage, Verbose]
        """,
        MEMORY,
        {"java_lang_Memory_ObjectPendingFinalizationCount": 0},
    ),
    (
        "cache: true rules see the value as <cache>",
        r"""
        rules:
        - pattern: 'name=api.*Count: (.*)'
          name: cached_$1
          cache: true
        """,
        REQUESTS,
        {"cached_cache_": 200},
    ),
]


@pytest.mark.parametrize(
    ("config", "beans", "expected"),
    [pytest.param(c, b, e, id=i) for i, c, b, e in CASES],
)
def test_rule_cases(
    config: str, beans: Mapping[str, Mapping[str, Any]], expected: dict[str, float]
) -> None:
    text = scrape(config, beans, TABULAR_TYPES)
    assert jmx_series(text) == pytest.approx(expected)


def test_unanchored_pattern_and_group_zero() -> None:
    """The pattern may match anywhere in the string; $0 is the whole string."""
    text = scrape(
        "rules:\n- pattern: 'name=api'\n  name: api_$0\n",
        {"demo.app:type=Requests,name=api,zone=eu": {"Count": 200}},
    )
    assert jmx_series(text) == {
        # ":" is legal in metric names, so it stays.
        "api_demo_app_type_Requests_name_api_zone_eu_Count:_200": 200
    }


TYPE_CASES = [
    ("GAUGE", "x", "x", "gauge"),
    ("COUNTER", "x", "x_total", "counter"),
    ("COUNTER", "x_total", "x_total", "counter"),  # _total is not doubled
    ("GAUGE", "x_total", "x", "gauge"),  # reserved suffixes are stripped, as client_java 1.x
    ("UNTYPED", "x_info", "x", "unknown"),
    (None, "x", "x", "unknown"),
]


@pytest.mark.parametrize(("rule_type", "name", "sample", "family_type"), TYPE_CASES)
def test_types_and_suffixes(
    rule_type: str | None, name: str, sample: str, family_type: str
) -> None:
    type_line = f"\n  type: {rule_type}" if rule_type else ""
    text = scrape(f"rules:\n- pattern: 'name=api.*Count'\n  name: {name}{type_line}\n", REQUESTS)
    assert jmx_series(text) == {sample: 200}
    family = sample.removesuffix("_total") if family_type == "counter" else sample
    assert types(text)[family] == family_type


def test_mixed_types_under_one_name_are_unknown() -> None:
    text = scrape(
        """
        rules:
        - pattern: 'name=api.*Count'
          name: requests
          labels: {n: api}
          type: COUNTER
        - pattern: 'name=admin.*Count'
          name: requests
          labels: {n: admin}
          type: GAUGE
        """,
        REQUESTS,
    )
    assert types(text)["requests"] == "unknown"
    assert jmx_series(text) == {'requests{n="api"}': 200, 'requests{n="admin"}': 7}


def test_help_default_and_from_rule() -> None:
    text = scrape(
        r"""
        rules:
        - pattern: 'name=(api).*Count'
          name: with_help
          help: 'Requests of $1'
        - pattern: 'name=admin.*Count'
          name: without_help
        """,
        REQUESTS,
    )
    assert "# HELP with_help Requests of api\n" in text
    # Default help: the bean and attribute (plus the MBean's description when it says more).
    assert "# HELP without_help demo.app:name=admin,type=Requests,attribute=Count\n" in text


def test_inferred_counter_type_from_name() -> None:
    text = scrape(
        """
        inferCounterTypeFromName: true
        rules:
        - pattern: 'name=api.*Count'
          name: requests_total
        """,
        REQUESTS,
    )
    assert types(text)["requests"] == "counter"
    assert jmx_series(text) == {"requests_total": 200}


def test_own_metrics_are_present() -> None:
    text = scrape("rules: []", REQUESTS)
    got = series(text)
    assert got["jmx_scrape_error"] == 0
    assert got["jmx_config_reload_success_total"] == 0
    assert got["jmx_config_reload_failure_total"] == 0
    assert got["jmx_scrape_duration_seconds"] >= 0
    assert any(k.startswith("jmx_exporter_build_info{") for k in got)
    assert jmx_series(text) == {}


def test_unchanged_values_are_served_from_the_cache_and_changes_are_seen() -> None:
    beans = {"demo.app:type=Requests,name=api,zone=eu": {"Count": 1, "Errors": 5}}
    fake = FakeJolokia(beans)
    rules = (
        "rules:\n- pattern: 'Count: 1$'\n  name: one\n- pattern: '<>(\\w+): (\\d+)'\n  name: n_$1\n"
    )
    config = parse_config(URL + rules)
    source = JmxSource("t.yml", config, transport=fake.transport)

    async def run() -> list[dict[str, float]]:
        out = []
        try:
            for count in (1, 1, 2, 1):
                beans["demo.app:type=Requests,name=api,zone=eu"]["Count"] = count
                out.append(jmx_series(render(await source.collect())))
        finally:
            await source.close()
        return out

    results = asyncio.run(run())
    assert results == [
        {"one": 1, "n_Errors": 5},
        {"one": 1, "n_Errors": 5},
        {"n_Count": 2, "n_Errors": 5},
        {"one": 1, "n_Errors": 5},
    ]
    # One bulk request per scrape; the attribute types are listed only on the first.
    assert [[r["type"] for r in post] for post in fake.posts] == [
        ["list", "read"],
        ["read"],
        ["read"],
        ["read"],
    ]


def test_a_slow_listing_moves_to_the_background_and_reads_go_on() -> None:
    fake = FakeJolokia(CACHE, TABULAR_TYPES)
    fake.list_delay = 1.0
    config = parse_config(URL + "timeout: 0.5\nincludeObjectNames: ['demo.app:type=Regions']\n")
    source = JmxSource("t.yml", config, transport=fake.transport)
    tabular = 'demo_app_Regions_Entries{key="eu"}'

    async def run() -> list[dict[str, float]]:
        out = []
        try:
            out.append(series(render(await source.collect())))  # list + read: times out
            out.append(series(render(await source.collect())))  # read now, list behind
            # The background list (allowed 10 x timeout) lands within a few seconds.
            for _ in range(100):
                out.append(series(render(await source.collect())))
                if tabular in out[-1]:
                    break
                await asyncio.sleep(0.1)
        finally:
            await source.close()
        return out

    first, second, *later = asyncio.run(run())
    assert first["jmx_scrape_error"] == 1
    assert second["jmx_scrape_error"] == 0
    # Before the types are known the map reads as composite data; after, as tabular data.
    assert second["demo_app_Regions_Entries_eu"] == 5
    assert later[-1][tabular] == 5
    assert all(s["jmx_scrape_error"] == 0 for s in later)


def test_maps_inside_composite_data_become_labels_like_gc_info() -> None:
    beans = {
        # The JDK registers its collectors with "name" first.
        "java.lang:name=Copy,type=GarbageCollector": {
            "CollectionCount": 3,
            "LastGcInfo": {
                "id": 3,
                "memoryUsageAfterGc": {
                    "Eden Space": {"committed": 10, "init": 10, "max": 20, "used": 0},
                    "Tenured Gen": {"committed": 30, "init": 30, "max": 90, "used": 7},
                },
            },
        }
    }
    text = scrape("rules:\n- pattern: 'used|CollectionCount|<LastGcInfo>id'\n", beans)
    gc = 'type="GarbageCollector"'
    assert jmx_series(text) == {
        f"java_lang_Copy_CollectionCount{{{gc}}}": 3,
        f"java_lang_Copy_LastGcInfo_id{{{gc}}}": 3,
        f'java_lang_Copy_LastGcInfo_memoryUsageAfterGc_used{{key="Eden Space",{gc}}}': 0,
        f'java_lang_Copy_LastGcInfo_memoryUsageAfterGc_used{{key="Tenured Gen",{gc}}}': 7,
    }


def test_longs_sent_as_strings_are_numbers_and_error_texts_are_skipped() -> None:
    beans = {
        "demo.app:type=Requests,name=api,zone=eu": {
            "Count": "1234567890123",
            "Errors": "Unsupported",
        }
    }
    types_ = {"demo.app:type=Requests,name=api,zone=eu": {"Count": "long", "Errors": "int"}}
    text = scrape("rules:\n- pattern: 'Count|Errors'\n", beans, types_)
    assert jmx_series(text) == {'demo_app_Requests_Count{name="api",zone="eu"}': 1234567890123}


def test_a_bean_registered_later_gets_its_types_listed_once() -> None:
    fake = FakeJolokia(REQUESTS, TABULAR_TYPES)
    config = parse_config(URL + "includeObjectNames: ['demo.app:*']\n")
    source = JmxSource("t.yml", config, transport=fake.transport)

    async def run() -> list[dict[str, float]]:
        out = []
        try:
            out.append(jmx_series(render(await source.collect())))
            fake.beans["demo.app:type=Regions"] = CACHE["demo.app:type=Regions"]
            for _ in range(3):
                out.append(jmx_series(render(await source.collect())))
        finally:
            await source.close()
        return out

    results = asyncio.run(run())
    assert "demo_app_Regions_Entries_eu" in results[1]  # types unknown yet: read as composite
    assert results[2]['demo_app_Regions_Entries{key="eu"}'] == 5  # listed with this scrape
    assert results[3] == results[2]
    assert [[r["type"] for r in post] for post in fake.posts] == [
        ["list", "read"],
        ["read"],
        ["list", "read"],
        ["read"],
    ]


def test_start_delay_serves_nothing_until_it_has_passed() -> None:
    text = scrape("startDelaySeconds: 3600\n", REQUESTS)
    assert text == ""


def test_include_object_name_attributes_keeps_only_those() -> None:
    text = scrape(
        """
        includeObjectNames: ['demo.app:type=Requests,name=api,zone=eu']
        includeObjectNameAttributes:
          "demo.app:type=Requests,name=api,zone=eu": [Count]
        """,
        REQUESTS,
    )
    assert jmx_series(text) == {'demo_app_Requests_Count{name="api",zone="eu"}': 200}


def test_overlapping_scrapes_take_turns_and_both_answer() -> None:
    fake = FakeJolokia(REQUESTS)
    config = parse_config(URL + "rules:\n- pattern: 'name=api.*Count'\n  name: requests\n")
    source = JmxSource("t.yml", config, transport=fake.transport)

    async def run() -> list[dict[str, float]]:
        try:
            results = await asyncio.gather(*(source.collect() for _ in range(3)))
        finally:
            await source.close()
        return [jmx_series(render(r)) for r in results]

    assert asyncio.run(run()) == [{"requests": 200}] * 3


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(value=_JSON, status=st.sampled_from([200, 404, 500, "x", None]))
def test_whatever_jolokia_answers_collect_does_not_raise(value: Any, status: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)
        answers = [{"status": status, "value": value, "request": r} for r in batch]
        # json.dumps writes NaN/Infinity as Jolokia's JSON writer does.
        return httpx.Response(200, content=json.dumps(answers).encode())

    config = parse_config(URL + "rules:\n- pattern: '(.*)'\n  name: x_$1\n- pattern: '.*'\n")
    source = JmxSource("t.yml", config, transport=httpx.MockTransport(handler))

    async def run() -> str:
        try:
            return render(await source.collect())
        finally:
            await source.close()

    # The source's last-resort guard must not be what saved us: no unexpected exception.
    errors: list[logging.LogRecord] = []
    handler_ = logging.Handler(logging.ERROR)
    handler_.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("adapters.metrics.jmx.source")
    logger.addHandler(handler_)
    try:
        text = asyncio.run(run())
    finally:
        logger.removeHandler(handler_)
    assert "jmx_scrape_error" in text
    assert errors == []


def test_metric_customizers_attributes_as_labels_and_extra_metrics() -> None:
    text = scrape(
        r"""
        lowercaseOutputLabelNames: true
        metricCustomizers:
        - mbeanFilter:
            domain: demo.app
            properties: {type: Requests}
          attributesAsLabels: [Status]
          extraMetrics:
          - {name: Up, value: true, description: Always one}
        rules:
        - pattern: 'demo.app<type=Requests, name=(\w+), zone=\w+><>Count'
          name: requests
          labels: {endpoint: $1}
        - pattern: 'demo.app<type=Requests, name=api, zone=eu><>(Up|LatencyMillis)'
        """,
        REQUESTS,
    )
    assert jmx_series(text) == {
        'requests{endpoint="api",status="running"}': 200,
        'requests{endpoint="admin",status="stopped"}': 7,
        'demo_app_Requests_Up{name="api",status="running",zone="eu"}': 1,
        'demo_app_Requests_LatencyMillis{name="api",status="running",zone="eu"}': 12.5,
    }


def test_output_order_does_not_depend_on_bean_order() -> None:
    forward = scrape("rules:\n- pattern: 'Count|Latency'\n", REQUESTS)
    backward = scrape("rules:\n- pattern: 'Count|Latency'\n", dict(reversed(REQUESTS.items())))

    def without_duration(text: str) -> list[str]:
        return [line for line in text.splitlines() if "jmx_scrape_duration_seconds " not in line]

    assert without_duration(forward) == without_duration(backward)
    lines = [line for line in forward.splitlines() if line.startswith("demo_app_Requests_Count")]
    assert lines == [
        'demo_app_Requests_Count{name="admin",zone="us"} 7.0',
        'demo_app_Requests_Count{name="api",zone="eu"} 200.0',
    ]


def test_tabular_data_with_a_composite_index() -> None:
    # Jolokia writes tables whose index is not a simple value as {"indexNames", "values"}.
    bean = "demo.app:type=Routes"
    beans = {
        bean: {
            "Table": {
                "indexNames": ["route"],
                "values": [
                    {"route": {"host": "a", "port": 80}, "hits": 5},
                    {"route": {"host": "b", "port": 443}, "hits": 7},
                ],
            }
        }
    }
    types_ = {bean: {"Table": "javax.management.openmbean.TabularData"}}
    text = scrape("includeObjectNames: ['demo.app:type=Routes']\n", beans, types_)
    assert jmx_series(text) == {
        'demo_app_Routes_Table_hits{route_host="a",route_port="80"}': 5,
        'demo_app_Routes_Table_hits{route_host="b",route_port="443"}': 7,
    }
