"""The private ``GIT_CONFIG_GLOBAL``: written once at start-up in a private temp directory, then
only git itself touches it. Holds what upstream sets (credential cache, gc behaviour,
``safe.directory``), the SSH and cookie-file settings, and the user's ``--git-config`` pairs."""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sidecars.git_sync.flags import ConfigError


@dataclass(frozen=True)
class PrivateConfig:
    directory: Path
    path: Path
    credential_socket: Path
    ssh_command: str


def parse_git_config(text: str) -> list[tuple[str, str]]:
    """Upstream's ``--git-config`` format: ``key:value,"key.sub":"value, with comma"``."""
    pairs: list[tuple[str, str]] = []
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in ":,":
            fields.append("".join(current))
            current = []
            if char == ",":
                pairs.append(_pair(fields, text))
                fields = []
        else:
            current.append(char)
    if quoted:
        raise ConfigError(f"invalid flag: --git-config has an unterminated quote: {text!r}")
    fields.append("".join(current))
    if fields != [""]:
        pairs.append(_pair(fields, text))
    return pairs


def _pair(fields: list[str], text: str) -> tuple[str, str]:
    if len(fields) != 2 or not fields[0]:
        raise ConfigError(f"invalid flag: --git-config must be key:value pairs, got {text!r}")
    return fields[0], fields[1]


def _escape(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_private_config(
    *,
    group_write: bool,
    ssh_key_files: tuple[str, ...],
    ssh_known_hosts: bool,
    ssh_known_hosts_file: str,
    cookie_file: bool,
    extra: list[tuple[str, str]],
) -> PrivateConfig:
    directory = Path(tempfile.mkdtemp(prefix="git-sync."))
    os.chmod(directory, 0o700)
    path = directory / "gitconfig"
    socket = directory / "credential-cache.sock"
    entries: list[tuple[str, str]] = [
        ("credential.helper", f"cache --timeout=3600 --socket={socket}"),
        ("gc.autoDetach", "false"),
        ("gc.pruneExpire", "now"),
        ("safe.directory", "*"),
        ("advice.detachedHead", "false"),
        ("init.defaultBranch", "git-sync"),
    ]
    if group_write:
        entries.append(("core.sharedRepository", "group"))
    if cookie_file:
        entries.append(("http.cookieFile", "/etc/git-secret/cookie_file"))
    entries += extra
    lines = []
    for key, value in entries:
        section, _, name = key.rpartition(".")
        if not section or not name:
            raise ConfigError(f"invalid flag: --git-config key {key!r} has no section")
        head, _, sub = section.partition(".")
        header = f'[{head} "{sub}"]' if sub else f"[{head}]"
        lines.append(f"{header}\n\t{name} = {_escape(value)}\n")
    path.write_text("".join(lines))
    return PrivateConfig(
        directory, path, socket, _ssh_command(ssh_key_files, ssh_known_hosts, ssh_known_hosts_file)
    )


def _ssh_command(keys: tuple[str, ...], known_hosts: bool, known_hosts_file: str) -> str:
    """Only keys that exist are used (upstream's default key path is usually absent)."""
    parts = ["ssh", "-o", "BatchMode=yes"]
    for key in keys:
        if os.path.exists(key):
            parts += ["-i", key]
    if known_hosts:
        # Explicit, so a permissive ssh_config (accept-new, no) cannot switch verification off.
        parts += ["-o", "StrictHostKeyChecking=yes"]
        if os.path.exists(known_hosts_file):
            parts += ["-o", f"UserKnownHostsFile={known_hosts_file}"]
    else:
        parts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    return shlex.join(parts)
