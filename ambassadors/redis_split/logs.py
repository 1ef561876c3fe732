"""JSON log lines on stderr, one event per line. Fields passed with ``extra=`` are included."""

from __future__ import annotations

import json
import logging
import sys
import time

# Attributes every LogRecord has; anything else came from ``extra=`` and is an event field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Never print a value under these keys, whatever a caller passes.
_SECRET_KEYS = frozenset({"password", "auth", "requirepass", "secret"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                event[key] = "<redacted>" if key.lower() in _SECRET_KEYS else value
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def setup(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 1 else logging.INFO
    )
    # asyncio's own warnings (e.g. writes to a vanished client) are noise at the default level.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
