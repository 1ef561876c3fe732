"""Application stats: JSONPath subset, json_exporter rules, text formats, config errors."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.metrics.appstats import json_sources
from adapters.metrics.appstats.config import parse_targets
from adapters.metrics.appstats.extract import extract
from adapters.metrics.appstats.formats import FormatError, parse
from adapters.metrics.appstats.jsonpath import JsonPath, Template
from adapters.metrics.appstats.source import AppStatsSource
from adapters.metrics.errors import ConfigError
from tests.fixtures.exposition import render, series, types

# json_exporter's own example document and config.
EXAMPLE = {
    "counter": 1234,
    "values": [
        {"id": "id-A", "count": 1, "some_boolean": True, "state": "ACTIVE"},
        {"id": "id-B", "count": 2, "some_boolean": False, "state": "INACTIVE"},
        {"id": "id-C", "count": 3, "some_boolean": True, "state": "ACTIVE"},
    ],
    "location": "mars",
}
EXAMPLE_CONFIG = """
targets:
- url: http://stats.invalid/data.json
  name: example
modules:
  default:
    metrics:
    - name: example_global_value
      path: "{ .counter }"
      help: Example of a top-level global value scrape in the json
      labels:
        environment: beta
        location: "planet-{.location}"
    - name: example_value
      type: object
      help: Example of sub-level value scrapes from a json
      path: '{.values[?(@.state == "ACTIVE")]}'
      labels:
        environment: beta
        id: '{.id}'
      values:
        active: 1
        count: '{.count}'
        boolean: '{.some_boolean}'
    - name: example_state
      type: object
      path: '{.values[*]}'
      valuetype: gauge
      labels: {id: '{.id}'}
      values: {state: '{.state}'}
      valueconverter:
        '{.values[*].state}': {ACTIVE: 1, INACTIVE: 2}
"""


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("{.counter}", [1234]),
        ("{ $.location }", ["mars"]),
        ("{.values[0].id}", ["id-A"]),
        ("{.values[-1].id}", ["id-C"]),
        ("{.values[*].count}", [1, 2, 3]),
        ("{..count}", [1, 2, 3]),
        ('{.values[?(@.state == "INACTIVE")].id}', ["id-B"]),
        ("{.values[?(@.count > 1)].id}", ["id-B", "id-C"]),
        ("{.values[?(@.some_boolean)].id}", ["id-A", "id-C"]),
        ("{.values[?(@.count != 2)].count}", [1, 3]),
        ("{['location']}", ["mars"]),
        ("{.missing}", []),
        ("{.values[9]}", []),
    ],
)
def test_jsonpath(path: str, found: list[Any]) -> None:
    assert JsonPath.parse(path).find(EXAMPLE) == found


def test_templates() -> None:
    assert Template.parse("planet-{.location}").render(EXAMPLE) == "planet-mars"
    assert Template.parse("{.counter}/{.location}").render(EXAMPLE) == "1234/mars"
    assert Template.parse("beta").render(EXAMPLE) == "beta"
    assert Template.parse("x-{.nope}").render(EXAMPLE) is None


def _scrape(config: str, handler: Any) -> str:
    targets = parse_targets(yaml.safe_load(textwrap.dedent(config)))
    source = AppStatsSource(targets, transport=httpx.MockTransport(handler))

    async def run() -> str:
        try:
            return render(await source.collect())
        finally:
            await source.close()

    return asyncio.run(run())


def test_json_exporter_example() -> None:
    text = _scrape(EXAMPLE_CONFIG, lambda request: httpx.Response(200, json=EXAMPLE))
    got = series(text)
    assert got == {
        'example_global_value{environment="beta",location="planet-mars"}': 1234,
        'example_value_active{environment="beta",id="id-A"}': 1,
        'example_value_count{environment="beta",id="id-A"}': 1,
        'example_value_boolean{environment="beta",id="id-A"}': 1,
        'example_value_active{environment="beta",id="id-C"}': 1,
        'example_value_count{environment="beta",id="id-C"}': 3,
        'example_value_boolean{environment="beta",id="id-C"}': 1,
        'example_state_state{id="id-A"}': 1,
        'example_state_state{id="id-B"}': 2,
        'example_state_state{id="id-C"}': 1,
        'appstats_scrape_error{target="example"}': 0,
        'appstats_scrape_duration_seconds{target="example"}': got[
            'appstats_scrape_duration_seconds{target="example"}'
        ],
    }
    assert types(text)["example_state_state"] == "gauge"
    assert types(text)["example_global_value"] == "unknown"


COUNTER_CONFIG = """
targets:
- {url: "http://a.invalid/", name: a, labels: {instance: a1}}
- {url: "http://b.invalid/", name: b, labels: {instance: b1}}
modules:
  default:
    metrics:
    - {name: requests_total, path: "{.n}", valuetype: counter, help: Requests}
    - {name: hits, path: "{.n}", valuetype: counter}
"""


def test_counters_targets_and_failures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.invalid":
            return httpx.Response(200, json={"n": 5})
        return httpx.Response(500, text="down")

    text = _scrape(COUNTER_CONFIG, handler)
    got = series(text)
    assert got['requests_total{instance="a1"}'] == 5
    assert got['hits_total{instance="a1"}'] == 5  # counters are exposed with _total
    assert types(text)["requests"] == "counter"
    assert got['appstats_scrape_error{target="a"}'] == 0
    assert got['appstats_scrape_error{target="b"}'] == 1
    assert not any('instance="b1"' in k for k in got)


def test_malformed_json_is_a_target_error() -> None:
    text = _scrape(COUNTER_CONFIG, lambda request: httpx.Response(200, text="{not json"))
    got = series(text)
    assert got['appstats_scrape_error{target="a"}'] == 1
    assert got['appstats_scrape_error{target="b"}'] == 1


STUB_STATUS = (
    "Active connections: 3 \nserver accepts handled requests\n 10 9 20 \n"
    "Reading: 0 Writing: 1 Waiting: 2 \n"
)
REDIS_INFO = (
    "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n# Replication\r\n"
    "role:master\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n"
)


def test_text_formats() -> None:
    assert parse("nginx_stub_status", STUB_STATUS.encode()) == {
        "active": 3,
        "accepts": 10,
        "handled": 9,
        "requests": 20,
        "reading": 0,
        "writing": 1,
        "waiting": 2,
    }
    info = parse("redis_info", REDIS_INFO.encode())
    assert info["server"] == {"redis_version": "7.0.15", "uptime_in_seconds": 42}
    assert info["replication"] == {"role": "master"}
    assert info["keyspace"]["db0"] == {"name": "db0", "keys": 3, "expires": 1, "avg_ttl": 0}
    with pytest.raises(FormatError):
        parse("nginx_stub_status", b"<html>not found</html>")
    with pytest.raises(FormatError):
        parse("json", b"[1,")


def test_the_shipped_demo_config_on_canned_nginx_output() -> None:
    shipped = (
        Path(__file__).resolve().parents[2] / "demo" / "metrics" / "appstats.yml"
    ).read_text()
    doc = yaml.safe_load(shipped)
    doc["targets"] = [t for t in doc["targets"] if t["name"] == "nginx"]
    text = _scrape(json.dumps(doc), lambda request: httpx.Response(200, text=STUB_STATUS))
    got = series(text)
    assert got["nginx_connections_active"] == 3
    assert got["nginx_connections_waiting"] == 2
    assert got["nginx_http_requests_total"] == 20
    assert got["nginx_connections_accepted_total"] == 10


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"targets": []}, "key 'targets' must be a non-empty list"),
        ({"targets": [{"url": "ftp://x"}], "modules": {}}, "targets[0].url must be"),
        (
            {"targets": [{"url": "http://x/", "module": "m"}], "modules": {}},
            "targets[0].module: no module 'm'",
        ),
        ({"targets": [{"url": "http://x/", "nmae": "a"}]}, "targets[0]: unknown key 'nmae'"),
        ({"target": []}, "the file: unknown key 'target'"),
        (
            {
                "targets": [{"url": "http://x/"}],
                "modules": {"default": {"metrics": [{"name": "a"}]}},
            },
            "modules.default.metrics[0].path is required",
        ),
        (
            {
                "targets": [{"url": "http://x/"}],
                "modules": {"default": {"format": "xml", "metrics": [{"name": "a", "path": "."}]}},
            },
            "modules.default.format must be one of",
        ),
        (
            {
                "targets": [{"url": "http://x/"}],
                "modules": {
                    "default": {"metrics": [{"name": "a", "path": "{.a}", "type": "object"}]}
                },
            },
            "values is required for type object",
        ),
        (
            {
                "targets": [{"url": "http://x/"}],
                "modules": {"default": {"metrics": [{"name": "a b", "path": "{.a}"}]}},
            },
            "metrics[0].name must be a valid metric name",
        ),
    ],
)
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_targets(config)
    assert message in str(err.value)


def test_json_sources_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "stats.yml"
    path.write_text(EXAMPLE_CONFIG)
    (source,) = json_sources([str(path)])
    assert source.name == "json:example"
    assert json_sources([]) == []
    with pytest.raises(ConfigError, match=r"--json.config .*stats.yml: target name 'example'"):
        json_sources([str(path), str(path)])
    bad = tmp_path / "bad.yml"
    bad.write_text("targets: [unclosed")
    with pytest.raises(ConfigError, match=r"--json.config .*bad.yml: invalid YAML"):
        json_sources([str(bad)])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["counter", "values", "id", "state", "count", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None)
@given(document=_JSON)
def test_any_document_extracts_without_raising(document: Any) -> None:
    targets = parse_targets(yaml.safe_load(EXAMPLE_CONFIG))
    extract(targets[0].module.metrics, document, ())


def test_http_client_config_sends_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"n": 1})

    config = """
    targets:
    - {url: "http://a.invalid/", name: a, module: basic}
    - {url: "http://b.invalid/", name: b, module: bearer}
    modules:
      basic:
        http_client_config: {basic_auth: {username: mon, password: s3cret}}
        metrics: [{name: n, path: "{.n}"}]
      bearer:
        http_client_config: {bearer_token: tok3n}
        metrics: [{name: m, path: "{.n}"}]
    """
    got = series(_scrape(config, handler))
    assert got["n"] == 1 and got["m"] == 1
    auth = {r.url.host: r.headers.get("authorization") for r in seen}
    assert auth["a.invalid"] == "Basic bW9uOnMzY3JldA=="
    assert auth["b.invalid"] == "Bearer tok3n"
    targets = parse_targets(yaml.safe_load(textwrap.dedent(config)))
    assert "s3cret" not in repr(targets) and "tok3n" not in repr(targets)


def test_unknown_http_client_config_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"http_client_config: unknown key 'oauth2'"):
        parse_targets(
            {
                "targets": [{"url": "http://x/"}],
                "modules": {
                    "default": {
                        "http_client_config": {"oauth2": {}},
                        "metrics": [{"name": "a", "path": "{.a}"}],
                    }
                },
            }
        )


def test_epoch_timestamp_sets_sample_times() -> None:
    config = """
    targets: [{url: "http://a.invalid/"}]
    modules:
      default:
        metrics:
        - {name: temp, path: "{.t}", epochTimestamp: "{.at}"}
        - name: sensor
          type: object
          path: "{.sensors[*]}"
          epochTimestamp: "{.at}"
          labels: {id: "{.id}"}
          values: {reading: "{.v}"}
    """
    document = {
        "t": 21.5,
        "at": 1700000000000,
        "sensors": [{"id": "s1", "v": 3, "at": 1700000001500}],
    }
    text = _scrape(config, lambda request: httpx.Response(200, json=document))
    assert "temp 21.5 1700000000000" in text
    assert 'sensor_reading{id="s1"} 3.0 1700000001500' in text
