"""JSON-lines logging on stderr with upstream's V levels, and the ``--error-file`` export.

Every string that goes out passes through the redactor, which knows the secrets of this run
(passwords, trigger secret) and strips passwords from URLs, so a credential cannot leak through a
git error message either.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

_URL_PASSWORD = re.compile(r"(://[^/\s:@]*):[^@/\s]*@")


class Redactor:
    # Rotating credentials (askpass URL, app tokens) add a secret per refresh: keep the most
    # recent ones only, so memory and per-line cost stay bounded in a long-running sidecar.
    MAX_SECRETS = 64

    def __init__(self) -> None:
        self._secrets: dict[str, None] = {}

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < 3:  # redacting 1-2 chars would mangle every line
            return
        self._secrets.pop(secret, None)
        self._secrets[secret] = None
        while len(self._secrets) > self.MAX_SECRETS:
            del self._secrets[next(iter(self._secrets))]

    def __call__(self, text: str) -> str:
        text = _URL_PASSWORD.sub(r"\1:REDACTED@", text)
        for secret in self._secrets:
            text = text.replace(secret, "REDACTED")
        return text


class Logger:
    def __init__(
        self,
        verbosity: int,
        error_file: Path | None = None,
        stream: IO[str] | None = None,
        name: str = "",
    ) -> None:
        self.verbosity = verbosity
        self.error_file = error_file
        self.redact = Redactor()
        self._stream = stream or sys.stderr
        self._name = name

    def named(self, name: str) -> Logger:
        child = Logger(self.verbosity, self.error_file, self._stream, name)
        child.redact = self.redact
        return child

    def enabled(self, level: int) -> bool:
        return level <= self.verbosity

    def info(self, level: int, msg: str, **fields: object) -> None:
        if level <= self.verbosity:
            self._emit({"level": level, "msg": msg, **fields})

    def error(self, err: object, msg: str, **fields: object) -> None:
        error_text = str(err) if err is not None else ""
        self._emit({"level": 0, "msg": msg, "error": error_text, **fields})
        self.export_error(msg, error_text, fields)

    def _emit(self, record: dict[str, object]) -> None:
        line = {"logger": self._name, "ts": _timestamp(), **record}
        text = self.redact(json.dumps(line, default=str, ensure_ascii=False))
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed: nothing sensible left to do with a log line

    def export_error(self, msg: str, err: str = "", args: dict[str, object] | None = None) -> None:
        """Write the error file as upstream does: {"Msg", "Err", "Args"}, atomically."""
        if self.error_file is None:
            return
        payload = {"Msg": msg, "Err": err, "Args": args or {}}
        content = self.redact(json.dumps(payload, default=str))
        directory = self.error_file.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="tmp-err-", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.error_file)
        except OSError as problem:
            self._emit({"level": 0, "msg": "can't write the error file", "error": str(problem)})

    def delete_error_file(self) -> None:
        if self.error_file is None:
            return
        try:
            self.error_file.unlink()
        except FileNotFoundError:
            pass
        except OSError as problem:
            self._emit({"level": 0, "msg": "can't delete the error file", "error": str(problem)})


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
