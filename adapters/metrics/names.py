"""Metric and label name escaping, as statsd_exporter's ``EscapeMetricName`` does it.

Every character outside ``[a-zA-Z0-9_]`` becomes ``_``, a run of dashes becomes one ``_`` (so
``a--b`` and ``a-b`` agree), and a leading digit gets a ``_`` prefix.
"""

from __future__ import annotations

import re
from functools import lru_cache

_VALID = re.compile(r"[a-zA-Z0-9_]*\Z")
_INVALID_RUN = re.compile(r"-+|[^a-zA-Z0-9_-]")


@lru_cache(maxsize=65536)
def escape_metric_name(name: str) -> str:
    # Cached: the same few thousand names come back on every line, and the hot path calls this
    # only when a line shape is first seen, but tag keys go through it too.
    if not name:
        return ""
    escaped = name if _VALID.match(name) else _INVALID_RUN.sub("_", name)
    if "0" <= escaped[0] <= "9":
        escaped = "_" + escaped
    return escaped
