"""Get a target's stats body: an HTTP GET (httpx), or Redis ``INFO`` for ``redis://`` URLs
(one RESP command on a fresh connection; Redis has no HTTP endpoint of its own). Bounded by the
target's timeout; any failure is a :class:`FetchError`."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httpx


class FetchError(Exception):
    pass


class Fetcher:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        # httpx fixes TLS verification per client: one client per setting in use.
        self._clients: dict[bool | str, httpx.AsyncClient] = {}

    def _client(self, verify: bool | str) -> httpx.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            tls: bool | ssl.SSLContext = (
                verify if isinstance(verify, bool) else ssl.create_default_context(cafile=verify)
            )
            # trust_env=False: a proxy set for the pod must not sit between us and localhost.
            client = httpx.AsyncClient(
                follow_redirects=True, trust_env=False, verify=tls, transport=self._transport
            )
            self._clients[verify] = client
        return client

    async def fetch(
        self,
        url: str,
        headers: dict[str, str],
        timeout: float,
        basic_auth: tuple[str, str] | None = None,
        verify: bool | str = True,
    ) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                if url.startswith(("redis://", "rediss://")):
                    return await _redis_info(url)
                response = await self._client(verify).get(
                    url, headers=headers, timeout=timeout, auth=basic_auth
                )
                body = await response.aread()
        except TimeoutError as e:
            raise FetchError(f"timed out after {timeout:g}s") from e
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            # (OSError covers a missing or bad tlsCaFile too.)
            raise FetchError(" ".join(f"{type(e).__name__}: {e}".split())) from e
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code}")
        return body

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


async def _redis_info(url: str) -> bytes:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(
        parts.hostname or "127.0.0.1", parts.port or 6379, ssl=parts.scheme == "rediss" or None
    )
    try:
        if parts.password is not None:
            user = [parts.username.encode()] if parts.username else []
            writer.write(_command([b"AUTH", *user, parts.password.encode()]))
            reply = await reader.readline()
            if not reply.startswith(b"+"):
                raise FetchError("Redis AUTH failed")
        writer.write(_command([b"INFO"]))
        await writer.drain()
        header = await reader.readline()
        if not header.startswith(b"$"):
            raise FetchError(f"unexpected Redis reply {header[:80]!r}")
        length = int(header[1:])
        if length < 0:
            raise FetchError("empty Redis INFO reply")
        return (await reader.readexactly(length + 2))[:-2]
    finally:
        writer.close()


def _command(args: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
