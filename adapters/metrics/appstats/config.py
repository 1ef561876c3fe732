"""The ``--json.config`` file: json_exporter's ``modules`` plus the ``targets`` to scrape.

```yaml
targets:
- url: http://127.0.0.1:8080/stub_status     # http(s)://, or redis://host:port for INFO
  module: nginx                               # default: "default"
  name: web                                   # the target label of our own metrics
  labels: {instance: web-1}                   # added to every series of this target
modules:
  nginx:
    format: nginx_stub_status                 # json (default) | nginx_stub_status | redis_info
    timeout: 5                                # seconds
    headers: {Accept: application/json}
    http_client_config:                       # json_exporter's; this subset:
      basic_auth: {username: u, password: p}
      bearer_token: t
      tls_config: {insecure_skip_verify: false, ca_file: /etc/ssl/ca.pem}
    metrics:                                  # json_exporter's schema from here on
    - name: nginx_connections_active
      path: '{.active}'
      help: Open client connections
    - name: nginx_connections
      type: object
      valuetype: counter
      path: '{@}'
      values: {accepted: '{.accepts}', handled: '{.handled}'}
```

Each module is a json_exporter module (``metrics`` entries with ``name``, ``path``, ``help``,
``type`` value/object, ``valuetype`` gauge/counter/untyped, ``labels``, ``values``,
``valueconverter``, ``epochTimestamp``; ``http_client_config`` with basic auth, bearer token and
TLS), so existing json_exporter configs move over; ``format`` and ``timeout`` are ours.
Differences: a ``valueconverter`` applies to every value of its metric (not per path, and
case-insensitively), and counters are exposed as ``<name>_total`` as the Python client writes
them. Unknown keys are a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from adapters.metrics.appstats.formats import FORMATS
from adapters.metrics.appstats.jsonpath import JsonPath, JsonPathError, Template
from adapters.metrics.errors import ConfigError

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_VALUE_TYPES = {"gauge": "gauge", "counter": "counter", "untyped": "unknown"}


@dataclass(frozen=True)
class MetricRule:
    name: str
    help: str
    kind: str  # "value" or "object"
    value_type: str  # prometheus_client type: gauge, counter, unknown
    path: JsonPath
    labels: tuple[tuple[str, Template], ...]
    values: tuple[tuple[str, Template], ...]  # object metrics: name suffix -> value
    converter: dict[str, float] = field(default_factory=dict)
    epoch_timestamp: JsonPath | None = None  # milliseconds since the epoch, per sample


@dataclass(frozen=True)
class Module:
    format: str
    timeout: float
    headers: dict[str, str] = field(repr=False)  # may carry a bearer token
    metrics: tuple[MetricRule, ...]
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: bool | str = True  # TLS: verify (default CAs), off, or a CA file


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    module: Module
    labels: tuple[tuple[str, str], ...]


def load_targets(path: str) -> list[Target]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"--json.config {path}: cannot read: {e.strerror}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--json.config {path}: invalid YAML: {' '.join(str(e).split())}") from e
    try:
        return parse_targets(doc)
    except ConfigError as e:
        raise ConfigError(f"--json.config {path}: {e}") from e


def _keys(where: str, raw: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}")
    return raw


def parse_targets(doc: Any) -> list[Target]:
    doc = _keys("the file", doc if doc is not None else {}, {"targets", "modules"})
    modules_raw = _keys("modules", doc.get("modules") or {}, set(doc.get("modules") or {}))
    modules = {str(name): _module(f"modules.{name}", raw) for name, raw in modules_raw.items()}
    raw_targets = doc.get("targets")
    if not isinstance(raw_targets, list) or not raw_targets:
        raise ConfigError("key 'targets' must be a non-empty list")
    targets = []
    names: set[str] = set()
    for i, raw in enumerate(raw_targets):
        where = f"targets[{i}]"
        raw = _keys(where, raw, {"url", "module", "name", "labels"})
        url = raw.get("url")
        if not isinstance(url, str) or not re.match(r"^(https?|rediss?)://[^/\s]+", url):
            raise ConfigError(f"{where}.url must be an http(s):// or redis:// URL")
        module_name = str(raw.get("module", "default"))
        if module_name not in modules:
            raise ConfigError(f"{where}.module: no module {module_name!r} in 'modules'")
        name = str(raw.get("name", url))
        if name in names:
            raise ConfigError(f"{where}.name: {name!r} is used twice")
        names.add(name)
        labels = _keys(f"{where}.labels", raw.get("labels") or {}, set(raw.get("labels") or {}))
        for label in labels:
            if not _LABEL.match(str(label)):
                raise ConfigError(f"{where}.labels: {label!r} is not a valid label name")
        targets.append(
            Target(
                name,
                url,
                modules[module_name],
                tuple((str(k), str(v)) for k, v in labels.items()),
            )
        )
    return targets


def _module(where: str, raw: Any) -> Module:
    raw = _keys(where, raw, {"format", "timeout", "headers", "metrics", "http_client_config"})
    fmt = raw.get("format", "json")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format must be one of {', '.join(FORMATS)}")
    timeout = raw.get("timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"{where}.timeout must be a number of seconds > 0")
    if math.isinf(timeout):
        raise ConfigError(f"{where}.timeout must be finite")
    headers = _keys(f"{where}.headers", raw.get("headers") or {}, set(raw.get("headers") or {}))
    metrics_raw = raw.get("metrics")
    if not isinstance(metrics_raw, list) or not metrics_raw:
        raise ConfigError(f"{where}.metrics must be a non-empty list")
    metrics = tuple(_metric(f"{where}.metrics[{i}]", m) for i, m in enumerate(metrics_raw))
    header_map = {str(k): str(v) for k, v in headers.items()}
    basic_auth, verify = _http_client(f"{where}.http_client_config", raw, header_map)
    return Module(str(fmt), float(timeout), header_map, metrics, basic_auth, verify)


def _http_client(
    where: str, raw: dict[str, Any], headers: dict[str, str]
) -> tuple[tuple[str, str] | None, bool | str]:
    """The part of Prometheus' http_client_config (json_exporter's) that stats need: basic
    auth, a bearer token, and TLS verification."""
    http = _keys(
        where, raw.get("http_client_config") or {}, {"basic_auth", "bearer_token", "tls_config"}
    )
    basic_auth = None
    if "basic_auth" in http:
        auth = _keys(f"{where}.basic_auth", http["basic_auth"], {"username", "password"})
        if not isinstance(auth.get("username"), str):
            raise ConfigError(f"{where}.basic_auth.username is required")
        basic_auth = (auth["username"], str(auth.get("password") or ""))
    if "bearer_token" in http:
        headers["Authorization"] = f"Bearer {http['bearer_token']}"
    tls = _keys(
        f"{where}.tls_config", http.get("tls_config") or {}, {"insecure_skip_verify", "ca_file"}
    )
    verify: bool | str = not bool(tls.get("insecure_skip_verify", False))
    if "ca_file" in tls:
        verify = str(tls["ca_file"])
    return basic_auth, verify


def _metric(where: str, raw: Any) -> MetricRule:
    raw = _keys(
        where,
        raw,
        {
            "name",
            "path",
            "help",
            "type",
            "valuetype",
            "labels",
            "values",
            "valueconverter",
            "epochTimestamp",
        },
    )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}.name must be a valid metric name")
    kind = raw.get("type", "value")
    if kind not in ("value", "object"):
        raise ConfigError(f"{where}.type must be value or object")
    value_type = raw.get("valuetype", "untyped")
    if value_type not in _VALUE_TYPES:
        raise ConfigError(f"{where}.valuetype must be gauge, counter or untyped")
    if not isinstance(raw.get("path"), str):
        raise ConfigError(f"{where}.path is required (a JSONPath such as '{{.field}}')")
    try:
        path = JsonPath.parse(raw["path"])
        labels = tuple(
            (str(k), Template.parse(str(v))) for k, v in (raw.get("labels") or {}).items()
        )
        values = tuple(
            (str(k), Template.parse(str(v))) for k, v in (raw.get("values") or {}).items()
        )
        epoch = raw.get("epochTimestamp")
        epoch_timestamp = None if epoch is None else JsonPath.parse(str(epoch))
    except JsonPathError as e:
        raise ConfigError(f"{where}: {e}") from e
    for label, _ in labels:
        if not _LABEL.match(label):
            raise ConfigError(f"{where}.labels: {label!r} is not a valid label name")
    if kind == "object" and not values:
        raise ConfigError(f"{where}.values is required for type object")
    if kind == "value" and values:
        raise ConfigError(f"{where}.values is only for type object")
    converter: dict[str, float] = {}
    for _, mapping in (raw.get("valueconverter") or {}).items():
        if not isinstance(mapping, dict):
            raise ConfigError(f"{where}.valueconverter maps paths to {{string: number}}")
        for text, number in mapping.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ConfigError(f"{where}.valueconverter: {text!r} must map to a number")
            converter[str(text).lower()] = float(number)
    return MetricRule(
        name=name,
        help=str(raw.get("help", name)),
        kind=kind,
        value_type=_VALUE_TYPES[value_type],
        path=path,
        labels=labels,
        values=values,
        converter=converter,
        epoch_timestamp=epoch_timestamp,
    )
