"""Wires the stages together and runs them: listeners → ingest → registry ← exposition.

Also the service's life: config reload (SIGHUP, ``/-/reload``: a bad new config keeps the old
one and is counted), the TTL sweeper, and graceful shutdown on SIGTERM/SIGINT or ``/-/quit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

from adapters.metrics.appstats import json_sources
from adapters.metrics.errors import ConfigError
from adapters.metrics.exposition import Exposition, process_metric_names
from adapters.metrics.flags import Settings
from adapters.metrics.ingest import Ingester
from adapters.metrics.jmx import jmx_sources
from adapters.metrics.mapping import Mapper, MappingConfig, load_mapping_file
from adapters.metrics.parse import LineParser, TagDialects
from adapters.metrics.registry import Registry
from adapters.metrics.relay import Relay
from adapters.metrics.scrape import ScrapeTimeSource
from adapters.metrics.sources import (
    DatagramListener,
    listen_tcp,
    listen_udp,
    listen_unixgram,
    remove_unix_socket,
)
from adapters.metrics.telemetry import Telemetry

log = logging.getLogger("metrics-adapter")

_SWEEP_INTERVAL = 1.0


@dataclass(frozen=True)
class Loaded:
    """Everything read from config files; built whole or not at all."""

    mapping: MappingConfig
    sources: list[ScrapeTimeSource]


def load(settings: Settings) -> Loaded:
    """Read and validate every config file; raises ConfigError naming the flag/key."""
    mapping = (
        load_mapping_file(settings.statsd_mapping_config)
        if settings.statsd_mapping_config
        else MappingConfig()
    )
    sources = [*jmx_sources(settings.jmx_config), *json_sources(settings.json_config)]
    return Loaded(mapping, sources)


def validate(settings: Settings) -> None:
    """Flag combinations upstream refuses at start-up."""
    if not (
        settings.statsd_listen_udp or settings.statsd_listen_tcp or settings.statsd_listen_unixgram
    ):
        raise ConfigError(
            "--statsd.listen-udp, --statsd.listen-tcp, --statsd.listen-unixgram: "
            "at least one listener must be specified"
        )


class Service:
    def __init__(self, settings: Settings, loaded: Loaded) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        self.registry = Registry(
            self.telemetry,
            settings.statsd_max_series,
            settings.statsd_max_series_per_metric,
            reserved=process_metric_names(),
        )
        self.parser = LineParser(
            self.telemetry,
            TagDialects(
                dogstatsd=settings.statsd_parse_dogstatsd_tags,
                influxdb=settings.statsd_parse_influxdb_tags,
                librato=settings.statsd_parse_librato_tags,
                signalfx=settings.statsd_parse_signalfx_tags,
            ),
            sets=settings.statsd_enable_sets,
        )
        self.relay = (
            Relay(
                settings.statsd_relay_address, settings.statsd_relay_packet_length, self.telemetry
            )
            if settings.statsd_relay_address
            else None
        )
        self.ingester = Ingester(
            self.parser,
            self._mapper(loaded.mapping),
            self.registry,
            self.telemetry,
            relay=self.relay,
        )
        self.exposition = Exposition(
            self.registry,
            self.telemetry,
            settings.web_telemetry_path,
            settings.web_enable_lifecycle,
            reload=self.reload,
            quit=self.stop,
            clock=time.monotonic,
            flush=self.ingester.flush,
        )
        self.exposition.sources = loaded.sources
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def _mapper(self, config: MappingConfig) -> Mapper:
        return Mapper(
            config, self.telemetry, self.settings.statsd_cache_size, self.settings.statsd_cache_type
        )

    def stop(self) -> None:
        self._stopping.set()

    async def reload(self) -> str | None:
        """Re-read every config file; on error keep the running config. Returns the error."""
        async with self._reload_lock:
            try:
                # On the loop's thread, like the first load: sources may bind to the loop.
                loaded = load(self.settings)
            except ConfigError as err:
                self.telemetry.config_reloads["failure"] += 1
                log.error(
                    "error reloading config, keeping the previous one", extra={"error": str(err)}
                )
                return str(err)
            self.ingester.use_mapper(self._mapper(loaded.mapping))
            old_sources, self.exposition.sources = self.exposition.sources, loaded.sources
            for source in old_sources:
                await source.close()
            self.telemetry.config_reloads["success"] += 1
            log.info("config reloaded", extra={"mappings": len(loaded.mapping.rules)})
            return None

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            removed = self.registry.sweep(time.monotonic())
            if removed:
                log.debug("expired series removed", extra={"count": removed})

    async def run(self) -> int:
        settings = self.settings
        loop = asyncio.get_running_loop()
        transports: list[DatagramListener] = []
        servers: list[asyncio.Server] = []
        owned_unix = ""  # the socket file is removed at exit only once we created it
        sweeper = loop.create_task(self._sweep())
        try:
            if settings.statsd_listen_udp:
                transports.append(
                    await listen_udp(
                        settings.statsd_listen_udp,
                        settings.statsd_read_buffer,
                        self.ingester.datagrams,
                        self.telemetry,
                    )
                )
            if settings.statsd_listen_tcp:
                servers.append(
                    await listen_tcp(
                        settings.statsd_listen_tcp, self.ingester.lines, self.telemetry
                    )
                )
            if settings.statsd_listen_unixgram:
                transports.append(
                    await listen_unixgram(
                        settings.statsd_listen_unixgram,
                        settings.statsd_unixsocket_mode,
                        settings.statsd_read_buffer,
                        self.ingester.datagrams,
                        self.telemetry,
                    )
                )
                owned_unix = settings.statsd_listen_unixgram
            try:
                await self.exposition.start(settings.web_listen_address)
            except OSError as err:
                raise ConfigError(
                    f"--web.listen-address: cannot listen on {settings.web_listen_address}: {err}"
                ) from err
            if self.relay is not None:
                self.relay.start()
            for signum, handler in (
                (signal.SIGTERM, self.stop),
                (signal.SIGINT, self.stop),
                (signal.SIGHUP, self._on_sighup),
            ):
                loop.add_signal_handler(signum, handler)
            self.exposition.ready = True
            log.info(
                "accepting StatsD traffic and Prometheus requests",
                extra={
                    "udp": settings.statsd_listen_udp,
                    "tcp": settings.statsd_listen_tcp,
                    "unixgram": settings.statsd_listen_unixgram,
                    "web": settings.web_listen_address,
                    "mappings": len(self.ingester.mapping.rules),
                },
            )
            await self._stopping.wait()
            log.info("shutting down")
            return 0
        finally:
            self.exposition.ready = False
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            for transport in transports:
                transport.close()
            for server in servers:
                server.close()
            await self.exposition.close()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if self.relay is not None:
                await self.relay.close()
            for source in self.exposition.sources:
                with contextlib.suppress(Exception):
                    await source.close()
            if owned_unix:
                remove_unix_socket(owned_unix)

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._sighup())
        # The loop only keeps a weak reference to tasks: hold it until it is done.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sighup(self) -> None:
        settings = self.settings
        if not (settings.statsd_mapping_config or settings.jmx_config or settings.json_config):
            # As upstream: nothing to reload is not a reload (and not counted as one).
            log.warning("received SIGHUP but there is no config file to reload")
            return
        log.info("received SIGHUP, reloading config")
        await self.reload()
