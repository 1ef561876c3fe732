"""Accepting clients: one Session per connection, a max-clients limit, reply deadlines and idle
timeouts (one periodic sweep, not a timer per command), graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import cast

from . import metrics
from .backends import Backends
from .config import Config
from .session import Session

log = logging.getLogger("redis_ambassador.server")

# Redis's own wording, so client libraries recognise it.
_MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"
_SWEEP_INTERVAL = 0.25


class _RefusedClient(asyncio.Protocol):
    """A connection over the max-clients limit: told so, and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        metrics.REJECTED_CLIENTS.labels("max_clients").inc()
        transport = cast(asyncio.Transport, transport)
        transport.write(_MAX_CLIENTS_REPLY)
        transport.close()


class Server:
    def __init__(self, config: Config, backends: Backends) -> None:
        self._config = config
        self._backends = backends
        self._sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._all_closed = asyncio.Event()

    async def start(self) -> None:
        listen = self._config.listen
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_client, listen.host, listen.port, backlog=1024
        )
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("listening", extra={"listen": str(listen)})

    def _new_client(self) -> asyncio.Protocol:
        if len(self._sessions) >= self._config.max_clients:
            return _RefusedClient()
        session = Session(self._backends, self._config, self._session_finished)
        self._sessions.add(session)
        self._all_closed.clear()
        metrics.CLIENTS.set(len(self._sessions))
        return session

    def _session_finished(self, session: Session) -> None:
        self._sessions.discard(session)
        metrics.CLIENTS.set(len(self._sessions))
        if not self._sessions:
            self._all_closed.set()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            now = time.monotonic()
            for session in list(self._sessions):
                try:
                    session.check_deadlines(now)
                except Exception:
                    log.exception("deadline check failed")

    async def shutdown(self) -> None:
        """Stop accepting, let every session deliver the replies it owes, then close."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.stop()
        if self._sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.shutdown_grace):
                    await self._all_closed.wait()
        abandoned = len(self._sessions)
        for session in list(self._sessions):
            session.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        log.info("stopped", extra={"abandoned_clients": abandoned})
