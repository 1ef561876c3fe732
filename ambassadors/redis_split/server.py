"""Accepting clients: one Session per connection, a max-clients limit, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from . import metrics
from .backends import Backends
from .config import Config
from .session import Session

log = logging.getLogger("redis_ambassador.server")

# Redis's own wording, so client libraries recognise it.
_MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"


class Server:
    def __init__(self, config: Config, backends: Backends) -> None:
        self._config = config
        self._backends = backends
        self._sessions: set[Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        listen = self._config.listen
        self._server = await asyncio.start_server(
            self._accept, listen.host, listen.port, backlog=1024, reuse_address=True
        )
        log.info("listening", extra={"listen": str(listen)})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._sessions) >= self._config.max_clients:
            metrics.REJECTED_CLIENTS.labels("max_clients").inc()
            writer.write(_MAX_CLIENTS_REPLY)
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            writer.close()
            return
        session = Session(reader, writer, self._backends, self._config)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        metrics.CLIENTS.set(len(self._sessions))
        try:
            await session.run()
        except Exception:
            log.exception("session failed")
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._tasks.discard(task)
            metrics.CLIENTS.set(len(self._sessions))

    async def shutdown(self) -> None:
        """Stop accepting, let every session deliver the replies it owes, then close."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.stop()
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._config.shutdown_grace)
            for task in late:
                task.cancel()
        log.info("stopped", extra={"abandoned_clients": len(self._sessions)})
