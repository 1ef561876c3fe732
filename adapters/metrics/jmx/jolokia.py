"""Jolokia over HTTP: one bulk POST per scrape, bounded by a timeout.

Every request asks for ``canonicalNaming=false`` (ObjectNames with properties in registration
order, which jmx_exporter's names depend on) and ``ignoreErrors=true`` (one failing attribute
does not fail its bean). Anything that is not a well-formed bulk answer (connection refused,
timeout, HTTP error, malformed JSON, an error object instead of a list) is a
:class:`JolokiaError`; per-request errors inside a good answer are left to the caller.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

_PROCESSING = {"canonicalNaming": "false", "ignoreErrors": "true", "includeStackTrace": "false"}
_REQUEST_CONFIG: dict[str, Any] = {
    "canonicalNaming": False,
    "ignoreErrors": True,
    "includeStackTrace": False,
}


class JolokiaError(Exception):
    """The bulk request as a whole failed. The message never contains credentials."""


def redact_url(url: str) -> str:
    """The URL without user info, for logs and errors."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def escape_path(part: str) -> str:
    """Escape one element of a Jolokia path (``!`` and ``/`` are special)."""
    return part.replace("!", "!!").replace("/", "!/")


def read_request(mbean: str) -> dict[str, Any]:
    return {"type": "read", "mbean": mbean, "config": _REQUEST_CONFIG}


def list_request(path: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"type": "list", "config": _REQUEST_CONFIG}
    if path is not None:
        request["path"] = path
    return request


class JolokiaClient:
    def __init__(
        self,
        url: str,
        *,
        username: str | None,
        password: str | None,
        timeout: float,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Jetty answers a POST to ".../jolokia" with a redirect; post to the servlet path.
        self._url = url if url.endswith("/") else url + "/"
        # Credentials in the URL become basic auth (unless username is set), and the URL httpx
        # sees (and logs at debug level: "HTTP Request: POST <url>") carries none.
        parts = urlsplit(self._url)
        if parts.username is not None or parts.password is not None:
            if username is None:
                username, password = unquote(parts.username or ""), unquote(parts.password or "")
            self._url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._timeout = timeout
        self._secret = password
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        tls: bool | ssl.SSLContext = (
            verify if isinstance(verify, bool) else ssl.create_default_context(cafile=verify)
        )
        self._http = httpx.AsyncClient(
            auth=auth,
            timeout=timeout,
            verify=tls,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )

    @property
    def url(self) -> str:
        return redact_url(self._url)

    async def bulk(
        self, requests: list[dict[str, Any]], timeout: float | None = None
    ) -> list[dict[str, Any]]:
        body = json.dumps(requests, separators=(",", ":")).encode()
        limit = self._timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                response = await self._http.post(
                    self._url, content=body, params=_PROCESSING, timeout=limit
                )
                content = await response.aread()
        except TimeoutError as e:
            raise JolokiaError(f"timed out after {limit:g}s") from e
        except httpx.HTTPError as e:
            raise JolokiaError(self._clean(f"{type(e).__name__}: {e}")) from e
        if response.status_code != 200:
            raise JolokiaError(f"HTTP {response.status_code}")
        try:
            answer = json.loads(content)
        except ValueError as e:
            raise JolokiaError(f"malformed JSON from Jolokia: {e}") from e
        if isinstance(answer, dict):
            # The whole bulk request was refused (bad request, access denied).
            raise JolokiaError(
                self._clean(f"Jolokia status {answer.get('status')}: {answer.get('error')}")
            )
        if not isinstance(answer, list) or len(answer) != len(requests):
            raise JolokiaError("Jolokia answered with an unexpected shape")
        if not all(isinstance(item, dict) for item in answer):
            raise JolokiaError("Jolokia answered with an unexpected shape")
        return answer

    def _clean(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return " ".join(text.split())

    async def close(self) -> None:
        await self._http.aclose()
