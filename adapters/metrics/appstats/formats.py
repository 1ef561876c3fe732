"""Stats bodies -> one JSON-like document, so every format is queried with the same JSONPath.

- ``json``: the body as is.
- ``nginx_stub_status``: nginx's ``stub_status`` page ->
  ``{"active": 1, "accepts": 10, "handled": 10, "requests": 20, "reading": 0, "writing": 1,
  "waiting": 0}``.
- ``redis_info``: Redis ``INFO`` -> ``{"server": {"redis_version": "7.0.15", ...},
  "keyspace": {"db0": {"name": "db0", "keys": 1, "expires": 0, ...}}, ...}``; numbers become
  numbers, and ``k=v,...`` records carry their own key as ``name`` (JSONPath cannot name keys).
"""

from __future__ import annotations

import json
import re
from typing import Any

FORMATS = ("json", "nginx_stub_status", "redis_info")


class FormatError(ValueError):
    """The body is not in the expected format."""


def parse(format_name: str, body: bytes) -> Any:
    if format_name == "json":
        try:
            return json.loads(body)
        except ValueError as e:
            raise FormatError(f"malformed JSON: {e}") from e
    text = body.decode("utf-8", "replace")
    if format_name == "nginx_stub_status":
        return _stub_status(text)
    if format_name == "redis_info":
        return _redis_info(text)
    raise FormatError(f"unknown format {format_name!r}")


_STUB = re.compile(
    r"Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)\s+"
    r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)"
)


def _stub_status(text: str) -> dict[str, int]:
    m = _STUB.search(text)
    if m is None:
        raise FormatError("not an nginx stub_status page")
    keys = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
    return dict(zip(keys, (int(g) for g in m.groups()), strict=True))


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _redis_info(text: str) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            current = sections.setdefault(line[1:].strip().lower(), {})
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if current is None:
            current = sections.setdefault("default", {})
        if ("=" in value and "," in value) or re.fullmatch(r"\w+=[^,]*", value):
            # "db0:keys=1,expires=0,avg_ttl=0" and similar records
            record: dict[str, Any] = {"name": key}
            for item in value.split(","):
                k, _, v = item.partition("=")
                record[k] = _number(v)
            current[key] = record
        else:
            current[key] = _number(value)
    if not sections:
        raise FormatError("not a Redis INFO reply")
    return sections
