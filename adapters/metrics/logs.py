"""Logs on stderr, one event per line: JSON (the project's default) or logfmt (upstream's).

Fields passed as ``extra={...}`` become keys of the event.
"""

from __future__ import annotations

import json
import logging
import sys
import time

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD:
            fields[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        fields["error"] = str(record.exc_info[1])
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for key, value in _fields(record).items():
            text = str(value)
            if not text or any(c in text for c in ' ="\n'):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        return " ".join(parts)


def configure(level: str, fmt: str) -> logging.Logger:
    """Format every logger's events (asyncio's and the scrape-time sources' too) the same way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # httpx logs every request at INFO; one line per Jolokia or stats scrape would drown the
    # events that matter. Its warnings and errors still come through; --log.level=debug shows all.
    chosen = LEVELS[level]
    logging.getLogger("httpx").setLevel(
        chosen if chosen <= logging.DEBUG else max(chosen, logging.WARNING)
    )
    return logging.getLogger("metrics-adapter")
