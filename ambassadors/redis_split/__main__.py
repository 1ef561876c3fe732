"""Entry point of redis-ambassador: flags → Config → the pipeline (server, sessions, backends,
Sentinel discovery, admin HTTP)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from importlib.metadata import version

from . import logs
from .admin_http import AdminHttp
from .backends import Backends
from .config import (
    Config,
    ConfigError,
    ReadPolicy,
    parse_address,
    parse_bind_address,
    parse_duration,
    parse_lag,
)
from .control import Address
from .sentinel import SentinelDiscovery, SentinelError
from .server import Server

log = logging.getLogger("redis_ambassador")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis-ambassador",
        description="A localhost Redis proxy: writes to the master, reads to healthy replicas.",
    )
    add = parser.add_argument
    add("--version", action="version", version=f"redis-ambassador {version('podpatterns')}")
    add("--listen", default="127.0.0.1:6379", help="address for the app (default %(default)s)")
    add("--master", help="master HOST:PORT (without Sentinel)")
    add("--replica", action="append", default=[], help="replica HOST:PORT (repeatable)")
    add("--sentinel", action="append", default=[], help="Sentinel HOST:PORT (repeatable)")
    add("--sentinel-master", help="the master name monitored by Sentinel")
    add(
        "--read-policy",
        default="prefer-replica",
        help="master, prefer-master, replica, prefer-replica (default) or any (Envoy's names)",
    )
    add("--http-bind", help="HOST:PORT for /metrics and /ready (off when unset)")
    add(
        "--max-replica-lag",
        help="take a replica out of rotation beyond this lag: bytes (1mb) and/or time (500ms)",
    )
    add(
        "--read-your-writes",
        action="store_true",
        help="after a write, a client's reads go to the master until a replica has it",
    )
    add(
        "--read-your-writes-window",
        default="0",
        help="with --read-your-writes: use a fixed window (e.g. 2s) instead of offsets",
    )
    add(
        "--shared-connections",
        default="1",
        help="connections per node shared by clients that keep no connection state "
        "(0: every client gets its own; default %(default)s)",
    )
    add("--max-clients", default="10000", help="client connections allowed (default 10000)")
    add("--client-idle-timeout", default="0", help="close idle clients after this (0: never)")
    add("--upstream-timeout", default="5s", help="deadline for a non-blocking reply")
    add("--connect-timeout", default="1s", help="deadline for connecting to a node")
    add("--health-interval", default="100ms", help="how often each node is checked")
    add("--shutdown-grace", default="5s", help="on SIGTERM, time allowed for replies to drain")
    add(
        "--upstream-password-file",
        help="file holding the password for the ambassador's own connections to the nodes "
        "(health checks); or set REDIS_AMBASSADOR_UPSTREAM_PASSWORD",
    )
    add("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    add("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def build_config(args: argparse.Namespace) -> Config:
    try:
        policy = ReadPolicy(args.read_policy)
    except ValueError:
        names = ", ".join(p.value for p in ReadPolicy)
        raise ConfigError(f"--read-policy: {args.read_policy!r} is not one of {names}") from None
    if args.master and args.sentinel:
        raise ConfigError("--master and --sentinel are alternatives; give one of them")
    if not args.master and not args.sentinel:
        raise ConfigError("--master (or --sentinel with --sentinel-master) is required")
    if args.sentinel and not args.sentinel_master:
        raise ConfigError("--sentinel-master: required with --sentinel")
    if args.sentinel and args.replica:
        raise ConfigError("--replica: replicas come from Sentinel when --sentinel is given")
    max_bytes, max_seconds = (None, None)
    if args.max_replica_lag:
        max_bytes, max_seconds = parse_lag("--max-replica-lag", args.max_replica_lag)
    if not args.shared_connections.isdigit() or int(args.shared_connections) > 64:
        raise ConfigError(
            f"--shared-connections: {args.shared_connections!r} is not an integer from 0 to 64"
        )
    if not args.max_clients.isdigit() or int(args.max_clients) < 1:
        raise ConfigError(f"--max-clients: {args.max_clients!r} is not a positive integer")
    return Config(
        listen=parse_bind_address("--listen", args.listen),
        master=parse_address("--master", args.master, 6379) if args.master else None,
        replicas=tuple(parse_address("--replica", r, 6379) for r in args.replica),
        sentinels=tuple(parse_address("--sentinel", s, 26379) for s in args.sentinel),
        sentinel_master=args.sentinel_master,
        read_policy=policy,
        http_bind=parse_bind_address("--http-bind", args.http_bind) if args.http_bind else None,
        max_replica_lag_bytes=max_bytes,
        max_replica_lag_seconds=max_seconds,
        read_your_writes=args.read_your_writes,
        read_your_writes_window=parse_duration(
            "--read-your-writes-window", args.read_your_writes_window
        ),
        max_clients=int(args.max_clients),
        client_idle_timeout=parse_duration("--client-idle-timeout", args.client_idle_timeout),
        upstream_timeout=parse_duration("--upstream-timeout", args.upstream_timeout),
        connect_timeout=parse_duration("--connect-timeout", args.connect_timeout),
        health_interval=max(0.01, parse_duration("--health-interval", args.health_interval)),
        shutdown_grace=parse_duration("--shutdown-grace", args.shutdown_grace),
        verbosity=-1 if args.quiet else args.verbose,
        upstream_password=_upstream_password(args.upstream_password_file),
        shared_connections=int(args.shared_connections),
    )


def _upstream_password(path: str | None) -> str | None:
    if path is None:
        return os.environ.get("REDIS_AMBASSADOR_UPSTREAM_PASSWORD") or None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError as exc:
        raise ConfigError(f"--upstream-password-file: cannot read {path}: {exc.strerror}") from None


async def _initial_topology(
    config: Config,
) -> tuple[Address, list[Address], SentinelDiscovery | None]:
    if config.master is not None:
        return config.master, list(config.replicas), None
    assert config.sentinel_master is not None
    discovery = SentinelDiscovery(
        config.sentinels, config.sentinel_master, max(config.connect_timeout, 1.0)
    )
    # Sentinel may still be starting (compose, a pod restart): keep asking for a while.
    for attempt in range(60):
        try:
            master, replicas = await discovery.resolve()
            return master, replicas, discovery
        except SentinelError as exc:
            if attempt == 0:
                log.warning("waiting for sentinel", extra={"reason": str(exc)})
            await asyncio.sleep(1.0)
    raise SentinelError(f"no sentinel knows master {config.sentinel_master!r}")


async def serve(config: Config) -> int:
    try:
        master, replicas, discovery = await _initial_topology(config)
    except SentinelError as exc:
        print(f"redis-ambassador: --sentinel: {exc}", file=sys.stderr)
        return 1
    backends = Backends(config, master, replicas)
    server = Server(config, backends)
    admin = AdminHttp(config.http_bind, backends.ready) if config.http_bind else None
    try:
        await server.start()
        if admin is not None:
            await admin.start()
    except OSError as exc:
        print(f"redis-ambassador: cannot listen: {exc}", file=sys.stderr)
        return 1
    background = [asyncio.create_task(backends.run_health())]
    if discovery is not None:
        background.append(asyncio.create_task(discovery.follow(backends)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "started",
        extra={
            "master": str(master),
            "replicas": [str(r) for r in replicas],
            "read_policy": config.read_policy.value,
            "read_your_writes": config.read_your_writes,
        },
    )
    await stop.wait()
    log.info("SIGTERM: draining")
    await server.shutdown()
    if admin is not None:
        admin.close()
    backends.stop()
    for task in background:
        task.cancel()
    for task in background:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # unknown flags: argparse exits 2
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"redis-ambassador: {exc}", file=sys.stderr)
        return 1
    logs.setup(config.verbosity)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config))
    return uvloop.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
