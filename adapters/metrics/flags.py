"""Command-line flags, as statsd_exporter (kingpin) spells them, into a frozen ``Settings``.

Kingpin syntax: ``--flag=value`` or ``--flag value``; booleans are ``--flag`` / ``--no-flag``
(``--flag=true|false`` is accepted too). Repeatable flags (``--jmx.config``) collect a list.
An unknown flag is a usage error (exit 2); a value of the wrong type is a config error (exit 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapters.metrics.errors import ConfigError


class UsageError(Exception):
    """Unknown flag or missing value: exit 2."""


@dataclass(frozen=True)
class Settings:
    web_listen_address: str = ":9102"
    web_telemetry_path: str = "/metrics"
    web_enable_lifecycle: bool = False
    statsd_listen_udp: str = ":9125"
    statsd_listen_tcp: str = ":9125"
    statsd_listen_unixgram: str = ""
    statsd_unixsocket_mode: str = "755"
    statsd_mapping_config: str = ""
    statsd_read_buffer: int = 0
    statsd_cache_size: int = 1000
    statsd_cache_type: str = "lru"
    statsd_event_queue_size: int = 10000
    statsd_event_flush_threshold: int = 1000
    statsd_event_flush_interval: str = "200ms"
    statsd_udp_packet_queue_size: int = 10000
    statsd_parse_dogstatsd_tags: bool = True
    statsd_parse_influxdb_tags: bool = True
    statsd_parse_librato_tags: bool = True
    statsd_parse_signalfx_tags: bool = True
    statsd_relay_address: str = ""
    statsd_relay_packet_length: int = 1400
    debug_dump_fsm: str = ""
    check_config: bool = False
    log_level: str = "info"
    log_format: str = "json"
    # Ours, beyond upstream.
    statsd_max_series: int = 0
    statsd_max_series_per_metric: int = 0
    statsd_enable_sets: bool = False
    jmx_config: tuple[str, ...] = field(default=())
    json_config: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Flag:
    kind: str  # str | int | bool | list | enum
    help: str
    choices: tuple[str, ...] = ()


_FLAGS: dict[str, _Flag] = {
    "web.listen-address": _Flag("str", "Address for the web interface and /metrics."),
    "web.telemetry-path": _Flag("str", "Path under which to expose metrics."),
    "web.enable-lifecycle": _Flag("bool", "Enable shutdown and reload via HTTP request."),
    "statsd.listen-udp": _Flag("str", 'UDP address for StatsD lines. "" disables it.'),
    "statsd.listen-tcp": _Flag("str", 'TCP address for StatsD lines. "" disables it.'),
    "statsd.listen-unixgram": _Flag(
        "str", 'Unixgram socket path for StatsD lines. "" disables it.'
    ),
    "statsd.unixsocket-mode": _Flag("str", "The permission mode of the unix socket."),
    "statsd.mapping-config": _Flag("str", "Metric mapping configuration file name."),
    "statsd.read-buffer": _Flag(
        "int", "Size (bytes) of the kernel receive buffer for UDP/unixgram."
    ),
    "statsd.cache-size": _Flag("int", "Maximum size of the metric mapping cache."),
    "statsd.cache-type": _Flag("enum", "Metric mapping cache type.", ("lru", "random")),
    "statsd.event-queue-size": _Flag(
        "int", "Accepted for compatibility; events are applied inline."
    ),
    "statsd.event-flush-threshold": _Flag(
        "int", "Accepted for compatibility; events are applied inline."
    ),
    "statsd.event-flush-interval": _Flag(
        "str", "Accepted for compatibility; events are applied inline."
    ),
    "statsd.udp-packet-queue-size": _Flag(
        "int", "Accepted for compatibility; packets are applied inline."
    ),
    "statsd.parse-dogstatsd-tags": _Flag("bool", "Parse DogStatsD style tags."),
    "statsd.parse-influxdb-tags": _Flag("bool", "Parse InfluxDB style tags."),
    "statsd.parse-librato-tags": _Flag("bool", "Parse Librato style tags."),
    "statsd.parse-signalfx-tags": _Flag("bool", "Parse SignalFX style tags."),
    "statsd.relay.address": _Flag("str", "UDP host:port to relay every received line to."),
    "statsd.relay.packet-length": _Flag("int", "Maximum relay datagram size in bytes."),
    "debug.dump-fsm": _Flag("str", "Accepted for compatibility; there is no FSM to dump."),
    "check-config": _Flag("bool", "Check configuration and exit."),
    "log.level": _Flag(
        "enum",
        "Only log messages with the given severity or above.",
        ("debug", "info", "warn", "error"),
    ),
    "log.format": _Flag("enum", "Output format of log messages.", ("json", "logfmt")),
    "statsd.max-series": _Flag(
        "int", "Drop (and count) new series past this many in total; 0: no limit."
    ),
    "statsd.max-series-per-metric": _Flag(
        "int", "Drop (and count) new series past this many per metric name; 0: no limit."
    ),
    "statsd.enable-sets": _Flag(
        "bool", "Accept StatsD sets (|s) as a gauge of distinct values per scrape."
    ),
    "jmx.config": _Flag("list", "jmx_exporter-style config file for one JVM (repeatable)."),
    "json.config": _Flag("list", "JSON stats config file (repeatable)."),
}

_INT = re.compile(r"[+-]?\d+\Z")


def usage() -> str:
    lines = ["usage: metrics-adapter [<flags>]", "", "Flags:"]
    lines.append("  -h, --[no-]help  Show help.")
    lines.append("      --version    Show application version.")
    for name, spec in _FLAGS.items():
        shown = f"--[no-]{name}" if spec.kind == "bool" else f"--{name}=VALUE"
        lines.append(f"      {shown}  {spec.help}")
    return "\n".join(lines) + "\n"


def parse_flags(argv: list[str]) -> Settings | str:
    """Settings, or "help" / "version" when those were asked for."""
    values: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            return "help"
        if arg == "--version":
            return "version"
        if not arg.startswith("--"):
            raise UsageError(f"unexpected {arg}, try --help")
        name, has_value, value = arg[2:].partition("=")
        spec = _FLAGS.get(name)
        negated = False
        if spec is None and name.startswith("no-") and name[3:] in _FLAGS:
            spec = _FLAGS[name[3:]]
            if spec.kind != "bool":
                raise UsageError(f"unknown long flag '--{name}', try --help")
            name, negated = name[3:], True
        if spec is None:
            raise UsageError(f"unknown long flag '--{name}', try --help")
        if spec.kind == "bool":
            if negated and has_value:
                raise UsageError(f"unexpected value for --no-{name}")
            if has_value:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ConfigError(f"--{name}: expected true or false, got {value!r}")
                values[name] = value.lower() in ("true", "1")
            else:
                values[name] = not negated
            continue
        if not has_value:
            if i >= len(argv):
                raise UsageError(f"expected argument for flag '--{name}'")
            value = argv[i]
            i += 1
        if spec.kind == "int":
            if not _INT.match(value):
                raise ConfigError(f"--{name}: expected a whole number, got {value!r}")
            values[name] = int(value)
        elif spec.kind == "enum":
            if value not in spec.choices:
                raise ConfigError(
                    f"--{name}: enum value must be one of {','.join(spec.choices)}, got {value!r}"
                )
            values[name] = value
        elif spec.kind == "list":
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    fields: dict[str, Any] = {}
    for name, value in values.items():
        attribute = name.replace(".", "_").replace("-", "_")
        fields[attribute] = tuple(value) if isinstance(value, list) else value
    settings = Settings(**fields)
    if settings.statsd_read_buffer < 0:
        raise ConfigError("--statsd.read-buffer: must not be negative")
    if settings.statsd_cache_size < 0:
        raise ConfigError("--statsd.cache-size: must not be negative")
    if settings.statsd_max_series < 0 or settings.statsd_max_series_per_metric < 0:
        raise ConfigError("--statsd.max-series: must not be negative")
    if not settings.web_telemetry_path.startswith("/"):
        raise ConfigError("--web.telemetry-path: must start with '/'")
    return settings
