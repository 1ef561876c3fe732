"""The ambassador's configuration: one frozen object built by ``__main__`` from the flags."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from .control import Address


class ConfigError(ValueError):
    """A flag value is wrong; the message names the flag."""


class ReadPolicy(StrEnum):
    """Envoy redis_proxy's read policy names."""

    MASTER = "master"
    PREFER_MASTER = "prefer-master"
    REPLICA = "replica"
    PREFER_REPLICA = "prefer-replica"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Config:
    listen: Address
    master: Address | None
    replicas: tuple[Address, ...]
    sentinels: tuple[Address, ...]
    sentinel_master: str | None
    read_policy: ReadPolicy
    http_bind: Address | None
    # The lag gate: a replica further behind than either limit leaves the rotation.
    max_replica_lag_bytes: int | None
    max_replica_lag_seconds: float | None
    # Read-your-writes: after a write, the client's reads stay on the master until a replica has
    # replicated past it (offsets), or for a fixed window when ``read_your_writes_window`` > 0.
    read_your_writes: bool
    read_your_writes_window: float
    max_clients: int
    client_idle_timeout: float
    upstream_timeout: float
    connect_timeout: float
    health_interval: float
    shutdown_grace: float
    verbosity: int
    # For the ambassador's own connections (health checks, COMMAND, script sync) when the
    # nodes require AUTH; the app's AUTH is passed through separately. Never printed.
    upstream_password: str | None = field(default=None, repr=False)
    # Connections per node shared by the clients that keep no connection state (see
    # shared.py); 0 gives every client connections of its own.
    shared_connections: int = 1


def parse_bind_address(flag: str, value: str) -> Address:
    """A local address to listen on. ``:PORT`` means every interface, as in the other two
    services' flags (and Go's), so one spelling works across the pod."""
    if value.startswith(":"):
        value = "0.0.0.0" + value
    return parse_address(flag, value)


def parse_address(flag: str, value: str, default_port: int | None = None) -> Address:
    host, sep, port = value.rpartition(":")
    if not sep:
        if default_port is None:
            raise ConfigError(f"{flag}: {value!r} is not HOST:PORT")
        host, port = value, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{flag}: {value!r} is not HOST:PORT")
    return Address(host, int(port))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|k|m|g)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20}
_SIZE_UNITS |= {"g": 1 << 30, "gb": 1 << 30}


def parse_duration(flag: str, value: str) -> float:
    """``500ms``, ``2s``, ``1m`` or plain seconds."""
    match = _DURATION.match(value)
    if not match:
        raise ConfigError(f"{flag}: {value!r} is not a duration (e.g. 500ms, 2s)")
    number = float(match.group(1))
    unit = match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * (60 if unit == "m" else 1)


def parse_lag(flag: str, value: str) -> tuple[int | None, float | None]:
    """``--max-replica-lag``: a byte count (``1048576``, ``1mb``) or a time (``500ms``, ``2s``).

    Several limits may be given comma-separated (``1mb,2s``); each is enforced."""
    max_bytes: int | None = None
    max_seconds: float | None = None
    for part in value.split(","):
        size = _SIZE.match(part)
        if size and not part.strip().lower().endswith(("ms", "s")):
            max_bytes = int(size.group(1)) * _SIZE_UNITS[(size.group(2) or "").lower()]
            continue
        duration = _DURATION.match(part)
        if duration and duration.group(2):
            max_seconds = parse_duration(flag, part)
            continue
        raise ConfigError(f"{flag}: {part!r} is neither a size (1mb) nor a duration (2s)")
    return max_bytes, max_seconds
