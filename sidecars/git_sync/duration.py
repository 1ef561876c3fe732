"""Go's ``time.ParseDuration`` syntax ("100ms", "1m30s", "1.5h", "-2s", "0"), because users bring
their existing pod specs and those are written for the Go program."""

from __future__ import annotations

import re

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
# Go refuses durations that overflow an int64 of nanoseconds.
_MAX_NS = 2**63 - 1


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise DurationError on anything Go would reject."""
    original = text
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise DurationError(f"invalid duration {original!r}")
    pos = 0
    total_ns = 0.0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None:
            if re.fullmatch(r"[\d.]+", text[pos:]):
                raise DurationError(f"missing unit in duration {original!r}")
            raise DurationError(f"invalid duration {original!r}")
        total_ns += float(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    if total_ns > _MAX_NS:
        raise DurationError(f"invalid duration {original!r}: out of range")
    return sign * total_ns / 1e9


def format_duration(seconds: float) -> str:
    """The inverse, in Go's canonical style (``1m30s``, ``100ms``), for logs and messages."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    ns = round(abs(seconds) * 1e9)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{_trim(ns / size)}{unit}"
    hours, ns = divmod(ns, 3_600_000_000_000)
    minutes, ns = divmod(ns, 60_000_000_000)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{_trim(ns / 1e9)}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")
