"""The --jmx.config file: jmx_exporter's schema, our Jolokia keys, one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from adapters.metrics.errors import ConfigError
from adapters.metrics.jmx import jmx_sources
from adapters.metrics.jmx.config import load_config, parse_config

URL = "jolokiaUrl: http://127.0.0.1:8778/jolokia\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (URL + "lowercaseOutputNames: true", "unknown key 'lowercaseOutputNames'"),
        (URL + "rules:\n- pattern: x\n  nmae: y", "rules[0]: unknown key 'nmae'"),
        ("rules: []", "key 'jolokiaUrl' is required"),
        ("jolokiaUrl: 127.0.0.1:8778", "key 'jolokiaUrl' is required"),
        (URL + "rules:\n- pattern: '(unclosed'", "rules[0].pattern: invalid regex"),
        (URL + "rules:\n- name: x", "rules[0]: must provide pattern, if name is given"),
        (URL + "rules:\n- pattern: x\n  help: h", "must provide name, if help or labels are given"),
        (URL + "rules:\n- pattern: x\n  labels: {}", "must provide name, if help or labels"),
        (URL + "rules:\n- pattern: '(a)'\n  name: x_$2", "rules[0].name: no group 2"),
        (URL + "rules:\n- pattern: a\n  name: x\n  type: GUAGE", "rules[0].type must be"),
        (URL + "includeObjectNames: ['no-colon']", "key 'includeObjectNames': invalid ObjectName"),
        (
            URL + "lowercaseOutputName: yes please",
            "key 'lowercaseOutputName' must be true or false",
        ),
        (URL + "timeout: 0", "key 'timeout' must be > 0"),
        (
            URL + "metricCustomizers: [{attributesAsLabels: [a]}]",
            "metricCustomizers[0]: must provide mbeanFilter",
        ),
        (
            URL + "metricCustomizers: [{mbeanFilter: {domain: d}}]",
            "must provide attributesAsLabels or extraMetrics",
        ),
        (URL + "hostPort: a:1\njmxUrl: b", "at most one of hostPort and jmxUrl"),
        ("- a list", "the file must be a YAML mapping"),
        ("key: [unclosed", "invalid YAML"),
    ],
)
def test_errors_name_the_key_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="jmx.yml")
    assert message in str(err.value)
    assert str(err.value).startswith("--jmx.config jmx.yml: ")
    assert "\n" not in str(err.value)


def test_a_jmx_exporter_file_is_accepted_with_defaults() -> None:
    config = parse_config(
        URL
        + textwrap.dedent(
            r"""
            startDelaySeconds: 0
            hostPort: 127.0.0.1:1234
            ssl: false
            username: monitor
            password: s3cret-value
            lowercaseOutputName: false
            lowercaseOutputLabelNames: false
            whitelistObjectNames: ["org.apache.cassandra.metrics:*"]
            blacklistObjectNames: ["org.apache.cassandra.metrics:type=ColumnFamily,*"]
            rules:
              - pattern: 'org.apache.cassandra.metrics<type=(\w+), name=(\w+)><>Value: (\d+)'
                name: cassandra_$1_$2
                value: $3
                valueFactor: 0.001
                labels: {}
                help: "Cassandra metric $1 $2"
                cache: false
                type: GAUGE
                attrNameSnakeCase: false
            """
        )
    )
    assert [p.text for p in config.include] == ["org.apache.cassandra.metrics:*"]
    assert [p.text for p in config.exclude] == ["org.apache.cassandra.metrics:type=ColumnFamily,*"]
    assert config.ignored_keys == ("hostPort", "ssl")
    (rule,) = config.rules
    assert rule.value_factor == 0.001 and rule.type == "GAUGE"
    # The password is used for Jolokia's basic auth but never shown.
    assert "s3cret-value" not in repr(config)


def test_no_rules_means_one_default_rule_and_untyped() -> None:
    (rule,) = parse_config(URL).rules
    assert rule.pattern is None and rule.name is None and rule.type == "UNKNOWN"


@pytest.mark.parametrize("name", ["UNTYPED", "SUMMARY", "HISTOGRAM"])
def test_other_types_are_read_as_unknown_like_jmx_exporter_1(name: str) -> None:
    (rule,) = parse_config(URL + f"rules:\n- pattern: a\n  name: b\n  type: {name}").rules
    assert rule.type == "UNKNOWN"


def test_exclude_jvm_metrics_adds_the_jvm_domains() -> None:
    config = parse_config(URL + "excludeJvmMetrics: true")
    assert "java.lang:*" in [p.text for p in config.exclude]


def test_jmx_sources_reads_each_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    good = tmp_path / "a.yml"
    good.write_text(URL)
    sources = jmx_sources([str(good)])
    assert [s.name for s in sources] == [f"jmx:{good}"]
    with pytest.raises(ConfigError, match=r"--jmx.config .*missing.yml: cannot read"):
        load_config(str(tmp_path / "missing.yml"))
    assert jmx_sources([]) == []


def test_the_shipped_demo_config_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "demo" / "metrics" / "jmx.yml"
    config = load_config(str(path))
    assert config.jolokia_url == "http://jmx-app:8778/jolokia"
    assert len(config.rules) > 5


def test_password_file_is_read_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\n")
    config = parse_config(URL + f"username: mon\npasswordFile: {secret}\n")
    assert config.password == "s3cret-from-file"
    assert "s3cret-from-file" not in repr(config)
    with pytest.raises(ConfigError, match="key 'passwordFile': cannot read"):
        parse_config(URL + f"passwordFile: {tmp_path / 'missing'}\n")
    with pytest.raises(ConfigError, match="at most one of password and passwordFile"):
        parse_config(URL + f"password: x\npasswordFile: {secret}\n")
