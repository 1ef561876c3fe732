"""statsd_exporter's kingpin-style flags into Settings."""

from __future__ import annotations

import pytest

from adapters.metrics.errors import ConfigError
from adapters.metrics.flags import Settings, UsageError, parse_flags


def test_defaults_are_upstreams() -> None:
    settings = parse_flags([])
    assert isinstance(settings, Settings)
    assert settings.statsd_listen_udp == ":9125"
    assert settings.statsd_listen_tcp == ":9125"
    assert settings.web_listen_address == ":9102"
    assert settings.web_telemetry_path == "/metrics"
    assert settings.statsd_cache_size == 1000
    assert settings.statsd_cache_type == "lru"
    assert settings.statsd_relay_packet_length == 1400
    assert settings.statsd_parse_dogstatsd_tags is True


def test_kingpin_syntax() -> None:
    settings = parse_flags(
        [
            "--statsd.listen-udp=",
            "--statsd.listen-tcp",
            "127.0.0.1:9999",
            "--no-statsd.parse-influxdb-tags",
            "--statsd.parse-librato-tags=false",
            "--web.enable-lifecycle",
            "--statsd.read-buffer=4194304",
            "--jmx.config=/a.yml",
            "--jmx.config",
            "/b.yml",
            "--json.config=/c.yml",
            "--log.format=logfmt",
            "--statsd.max-series=10",
        ]
    )
    assert isinstance(settings, Settings)
    assert settings.statsd_listen_udp == ""
    assert settings.statsd_listen_tcp == "127.0.0.1:9999"
    assert settings.statsd_parse_influxdb_tags is False
    assert settings.statsd_parse_librato_tags is False
    assert settings.web_enable_lifecycle is True
    assert settings.statsd_read_buffer == 4194304
    assert settings.jmx_config == ("/a.yml", "/b.yml")
    assert settings.json_config == ("/c.yml",)
    assert settings.log_format == "logfmt"
    assert settings.statsd_max_series == 10


def test_help_and_version() -> None:
    assert parse_flags(["--help"]) == "help"
    assert parse_flags(["-h"]) == "help"
    assert parse_flags(["--version"]) == "version"


@pytest.mark.parametrize(
    "args",
    [["--nope"], ["--no-statsd.cache-size"], ["positional"], ["--statsd.mapping-config"]],
)
def test_usage_errors(args: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_flags(args)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--statsd.cache-size=big"], "--statsd.cache-size"),
        (["--statsd.cache-size=-1"], "--statsd.cache-size"),
        (["--statsd.cache-type=fifo"], "--statsd.cache-type"),
        (["--log.level=trace"], "--log.level"),
        (["--web.enable-lifecycle=maybe"], "--web.enable-lifecycle"),
        (["--web.telemetry-path=metrics"], "--web.telemetry-path"),
    ],
)
def test_bad_values_name_the_flag(args: list[str], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        parse_flags(args)
