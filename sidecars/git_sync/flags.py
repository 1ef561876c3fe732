"""The command-line surface of kubernetes/git-sync v4: every flag, its env vars, its default.

Parsing follows pflag (``--name=value``, ``--name value``, bare booleans, ``-v N``/``-v=N``/
``-vN``), because pod specs written for the Go binary must keep working. A malformed command line
raises ``UsageError`` (exit 2, like pflag); a malformed environment value raises ``ConfigError``
(exit 1, like upstream's env helpers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from sidecars.git_sync.duration import DurationError, parse_duration


class UsageError(Exception):
    """The command line cannot be parsed: exit 2."""


class ConfigError(Exception):
    """A value is present but unusable: exit 1 with this one-line message."""


class Kind(Enum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    DURATION = "duration"
    FLOAT = "float"
    STRINGS = "stringArray"  # repeatable; the env var holds one value
    CREDENTIALS = "credential"  # repeatable JSON objects (or a JSON list)


Value = str | int | bool | float | list[str] | list[dict[str, str]]


@dataclass(frozen=True)
class Flag:
    name: str
    kind: Kind
    default: Value
    # The first env var is the current name; the others are deprecated aliases. As upstream, when
    # several are set the last one listed wins.
    envs: tuple[str, ...] = ()
    help: str = ""
    short: str = ""
    secret: bool = False


def _f(
    name: str,
    kind: Kind,
    default: Value,
    *envs: str,
    help: str = "",
    short: str = "",
    secret: bool = False,
) -> Flag:
    return Flag(name, kind, default, envs, help, short, secret)


S, N, B, D, F = Kind.STRING, Kind.INT, Kind.BOOL, Kind.DURATION, Kind.FLOAT

FLAGS: tuple[Flag, ...] = (
    _f("version", B, False, help="print the version and exit"),
    _f("help", B, False, help="print help text and exit", short="h"),
    _f("man", B, False, help="print the full manual and exit"),
    _f("verbose", N, 0, "GITSYNC_VERBOSE", short="v", help="log at this V level and lower"),
    _f("repo", S, "", "GITSYNC_REPO", "GIT_SYNC_REPO", help="the git repository to sync"),
    _f("ref", S, "HEAD", "GITSYNC_REF", help="the git revision (branch, tag, or hash) to sync"),
    _f("depth", N, 1, "GITSYNC_DEPTH", "GIT_SYNC_DEPTH", help="shallow clone depth (0: full)"),
    _f("filter", S, "", "GITSYNC_FILTER", help="a partial-clone filter spec, e.g. blob:none"),
    _f("submodules", S, "recursive", "GITSYNC_SUBMODULES", "GIT_SYNC_SUBMODULES"),
    _f(
        "sparse-checkout-file",
        S,
        "",
        "GITSYNC_SPARSE_CHECKOUT_FILE",
        "GIT_SYNC_SPARSE_CHECKOUT_FILE",
    ),
    _f("root", S, "", "GITSYNC_ROOT", "GIT_SYNC_ROOT", help="the root directory (required)"),
    _f("link", S, "", "GITSYNC_LINK", "GIT_SYNC_LINK", help="the published symlink"),
    _f("error-file", S, "", "GITSYNC_ERROR_FILE", "GIT_SYNC_ERROR_FILE"),
    _f("period", D, 10.0, "GITSYNC_PERIOD", "GIT_SYNC_PERIOD", help="time between syncs"),
    _f("init-period", D, 0.0, "GITSYNC_INIT_PERIOD", help="time between syncs until the first"),
    _f("sync-timeout", D, 120.0, "GITSYNC_SYNC_TIMEOUT", "GIT_SYNC_SYNC_TIMEOUT"),
    _f("one-time", B, False, "GITSYNC_ONE_TIME", "GIT_SYNC_ONE_TIME"),
    _f("sync-on-signal", S, "", "GITSYNC_SYNC_ON_SIGNAL", "GIT_SYNC_SYNC_ON_SIGNAL"),
    _f("max-failures", N, 0, "GITSYNC_MAX_FAILURES", "GIT_SYNC_MAX_FAILURES"),
    _f("init-max-failures", N, 0, "GITSYNC_INIT_MAX_FAILURES"),
    _f("touch-file", S, "", "GITSYNC_TOUCH_FILE", "GIT_SYNC_TOUCH_FILE"),
    _f("add-user", B, False, "GITSYNC_ADD_USER", "GIT_SYNC_ADD_USER"),
    _f("group-write", B, False, "GITSYNC_GROUP_WRITE", "GIT_SYNC_GROUP_WRITE"),
    _f("stale-worktree-timeout", D, 0.0, "GITSYNC_STALE_WORKTREE_TIMEOUT"),
    _f("exechook-command", S, "", "GITSYNC_EXECHOOK_COMMAND", "GIT_SYNC_EXECHOOK_COMMAND"),
    _f("exechook-timeout", D, 30.0, "GITSYNC_EXECHOOK_TIMEOUT", "GIT_SYNC_EXECHOOK_TIMEOUT"),
    _f("exechook-backoff", D, 3.0, "GITSYNC_EXECHOOK_BACKOFF", "GIT_SYNC_EXECHOOK_BACKOFF"),
    _f("webhook-url", S, "", "GITSYNC_WEBHOOK_URL", "GIT_SYNC_WEBHOOK_URL"),
    _f("webhook-method", S, "POST", "GITSYNC_WEBHOOK_METHOD", "GIT_SYNC_WEBHOOK_METHOD"),
    _f(
        "webhook-success-status",
        N,
        200,
        "GITSYNC_WEBHOOK_SUCCESS_STATUS",
        "GIT_SYNC_WEBHOOK_SUCCESS_STATUS",
    ),
    _f("webhook-timeout", D, 1.0, "GITSYNC_WEBHOOK_TIMEOUT", "GIT_SYNC_WEBHOOK_TIMEOUT"),
    _f("webhook-backoff", D, 3.0, "GITSYNC_WEBHOOK_BACKOFF", "GIT_SYNC_WEBHOOK_BACKOFF"),
    _f("username", S, "", "GITSYNC_USERNAME", "GIT_SYNC_USERNAME"),
    _f("password-file", S, "", "GITSYNC_PASSWORD_FILE", "GIT_SYNC_PASSWORD_FILE"),
    _f("credential", Kind.CREDENTIALS, [], "GITSYNC_CREDENTIAL", secret=True),
    _f(
        "ssh-key-file",
        Kind.STRINGS,
        ["/etc/git-secret/ssh"],
        "GITSYNC_SSH_KEY_FILE",
        "GIT_SYNC_SSH_KEY_FILE",
        "GIT_SSH_KEY_FILE",
    ),
    _f(
        "ssh-known-hosts",
        B,
        True,
        "GITSYNC_SSH_KNOWN_HOSTS",
        "GIT_SYNC_KNOWN_HOSTS",
        "GIT_KNOWN_HOSTS",
    ),
    _f(
        "ssh-known-hosts-file",
        S,
        "/etc/git-secret/known_hosts",
        "GITSYNC_SSH_KNOWN_HOSTS_FILE",
        "GIT_SYNC_SSH_KNOWN_HOSTS_FILE",
        "GIT_SSH_KNOWN_HOSTS_FILE",
    ),
    _f("cookie-file", B, False, "GITSYNC_COOKIE_FILE", "GIT_SYNC_COOKIE_FILE", "GIT_COOKIE_FILE"),
    _f("askpass-url", S, "", "GITSYNC_ASKPASS_URL", "GIT_SYNC_ASKPASS_URL", "GIT_ASKPASS_URL"),
    _f("github-base-url", S, "https://api.github.com/", "GITSYNC_GITHUB_BASE_URL"),
    _f("github-app-private-key-file", S, "", "GITSYNC_GITHUB_APP_PRIVATE_KEY_FILE"),
    _f("github-app-client-id", S, "", "GITSYNC_GITHUB_APP_CLIENT_ID"),
    _f("github-app-application-id", N, 0, "GITSYNC_GITHUB_APP_APPLICATION_ID"),
    _f("github-app-installation-id", N, 0, "GITSYNC_GITHUB_APP_INSTALLATION_ID"),
    _f("git", S, "git", "GITSYNC_GIT", "GIT_SYNC_GIT", help="the git command to run"),
    _f("git-config", S, "", "GITSYNC_GIT_CONFIG", "GIT_SYNC_GIT_CONFIG"),
    _f("git-gc", S, "always", "GITSYNC_GIT_GC", "GIT_SYNC_GIT_GC"),
    _f("http-bind", S, "", "GITSYNC_HTTP_BIND", "GIT_SYNC_HTTP_BIND"),
    _f("http-metrics", B, False, "GITSYNC_HTTP_METRICS", "GIT_SYNC_HTTP_METRICS"),
    _f("http-pprof", B, False, "GITSYNC_HTTP_PPROF", "GIT_SYNC_HTTP_PPROF"),
    # Beyond upstream (added, never renamed).
    _f(
        "sync-trigger-secret-file",
        S,
        "",
        "GITSYNC_SYNC_TRIGGER_SECRET_FILE",
        help="enable POST /sync, authenticated with the shared secret in this file",
    ),
    _f(
        "publish-mode",
        S,
        "symlink",
        "GITSYNC_PUBLISH_MODE",
        help="'symlink' (upstream) or 'exchange' (a real directory swapped with renameat2)",
    ),
    _f("verify-signatures", B, False, "GITSYNC_VERIFY_SIGNATURES"),
    _f("allowed-signers-file", S, "", "GITSYNC_ALLOWED_SIGNERS_FILE"),
    # Deprecated v3 names, still accepted.
    _f("branch", S, "", "GIT_SYNC_BRANCH", help="DEPRECATED: use --ref instead"),
    _f("change-permissions", N, 0, "GIT_SYNC_PERMISSIONS", help="DEPRECATED: use --group-write"),
    _f("dest", S, "", "GIT_SYNC_DEST", help="DEPRECATED: use --link instead"),
    _f("max-sync-failures", N, 0, "GIT_SYNC_MAX_SYNC_FAILURES", help="DEPRECATED"),
    _f("password", S, "", help="DEPRECATED: use --password-file", secret=True),
    _f("rev", S, "", "GIT_SYNC_REV", help="DEPRECATED: use --ref instead"),
    _f("ssh", B, False, help="DEPRECATED: no longer necessary"),
    _f("sync-hook-command", S, "", "GIT_SYNC_HOOK_COMMAND", help="DEPRECATED"),
    _f("timeout", N, 0, "GIT_SYNC_TIMEOUT", help="DEPRECATED: use --sync-timeout"),
    _f("v", N, -1, help="DEPRECATED: use -v or --verbose instead"),
    _f("wait", F, 0.0, "GIT_SYNC_WAIT", help="DEPRECATED: use --period instead"),
)

# Values that only come from the environment (upstream keeps secrets off the command line).
ENV_ONLY: tuple[Flag, ...] = (
    _f("password-env", S, "", "GITSYNC_PASSWORD", "GIT_SYNC_PASSWORD", secret=True),
    _f("github-app-private-key", S, "", "GITSYNC_GITHUB_APP_PRIVATE_KEY", secret=True),
    _f("sync-trigger-secret", S, "", "GITSYNC_SYNC_TRIGGER_SECRET", secret=True),
)

# One line of help per flag, shown by --help (texts follow upstream's).
HELP_TEXT: dict[str, str] = {
    "submodules": "git submodule behavior: one of 'recursive', 'shallow', or 'off'",
    "sparse-checkout-file": "the path to a sparse-checkout file",
    "error-file": "an optional file (absolute or relative to --root) into which errors are written",
    "init-period": "the time between attempts until the first success (default: --period)",
    "sync-timeout": "the total time allowed for one complete sync, must be >= 10ms",
    "one-time": "exit after the first sync",
    "sync-on-signal": "sync on receipt of the specified signal (e.g. SIGHUP)",
    "max-failures": "consecutive failures allowed before aborting (-1: retry forever)",
    "init-max-failures": "failures allowed before the first success (default: --max-failures)",
    "touch-file": "a file (absolute or relative to --root) touched after each update",
    "add-user": "add an /etc/passwd record for the current UID/GID (SSH with an arbitrary UID)",
    "group-write": "ensure that all data (repo, worktrees, etc.) is group writable",
    "stale-worktree-timeout": "how long to retain non-current worktrees",
    "exechook-command": "an optional command to be run when syncs complete (must be idempotent)",
    "exechook-timeout": "the timeout for the exechook",
    "exechook-backoff": "the time to wait before retrying a failed exechook",
    "webhook-url": "a URL notified when syncs complete (must be idempotent)",
    "webhook-method": "the HTTP method for the webhook",
    "webhook-success-status": "the HTTP status of a successful webhook (0: any)",
    "webhook-timeout": "the timeout for the webhook",
    "webhook-backoff": "the time to wait before retrying a failed webhook",
    "username": "the username to use for git auth",
    "password-file": "the file holding the password or personal access token for git auth",
    "credential": "one or more credentials as JSON {url, username, password|password-file}",
    "ssh-key-file": "the SSH key(s) to use",
    "ssh-known-hosts": "enable SSH known_hosts verification",
    "ssh-known-hosts-file": "the known_hosts file to use",
    "cookie-file": "use a git cookiefile (/etc/git-secret/cookie_file) for authentication",
    "askpass-url": "a URL returning git credentials (username=<value> and password=<value>)",
    "github-base-url": "the GitHub API base URL, for GitHub app auth",
    "github-app-private-key-file": "the file holding the private key for GitHub app auth",
    "github-app-client-id": "the GitHub app client ID to use for GitHub app auth",
    "github-app-application-id": "the GitHub app application ID to use for GitHub app auth",
    "github-app-installation-id": "the GitHub app installation ID to use for GitHub app auth",
    "git-config": 'more git config: section.var1:val1,"section.sub.var2":"val2"',
    "git-gc": "git garbage collection: one of 'auto', 'always', 'aggressive', or 'off'",
    "http-bind": "the bind address (including port) for git-sync's HTTP endpoint",
    "http-metrics": "enable metrics on git-sync's HTTP endpoint",
    "http-pprof": "enable the debug endpoints (a stack dump) on git-sync's HTTP endpoint",
    "verify-signatures": "publish only commits signed by a key in --allowed-signers-file",
    "allowed-signers-file": "an SSH allowed-signers file or an OpenPGP public keyring",
    "max-sync-failures": "DEPRECATED: use --max-failures instead",
    "sync-hook-command": "DEPRECATED: use --exechook-command instead",
}

_BY_NAME = {flag.name: flag for flag in FLAGS}
_BY_SHORT = {flag.short: flag for flag in FLAGS if flag.short}
_BY_SHORT["?"] = _BY_NAME["help"]
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class RawValues:
    """Each flag's value, and which were given explicitly (on the command line or in env)."""

    values: Mapping[str, Value]
    given: frozenset[str]


def _convert(flag: Flag, text: str, where: str) -> Value:
    try:
        if flag.kind is Kind.STRING:
            return text
        if flag.kind is Kind.INT:
            return _go_int(text)
        if flag.kind is Kind.BOOL:
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("not a boolean")
        if flag.kind is Kind.DURATION:
            return parse_duration(text)
        if flag.kind is Kind.FLOAT:
            return float(text)
        if flag.kind is Kind.STRINGS:
            return [text]
        return _credentials(text)
    except (ValueError, DurationError) as err:
        raise ValueError(f"invalid value {text!r} for {where}: {err}") from None


def _go_int(text: str) -> int:
    """strconv.ParseInt(s, 0, 64), as pflag: 0x/0o/0b prefixes, a leading 0 means octal."""
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1:].replace("_", "").isdigit():
        return int(text[: len(text) - len(body)] + "0o" + body[1:], 0)
    return int(text, 0) if body[:2].lower() in ("0x", "0o", "0b") else int(text)


def _credentials(text: str) -> list[dict[str, str]]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    out: list[dict[str, str]] = []
    for item in items:
        if not isinstance(item, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in item.items()
        ):
            raise ValueError("expected a JSON object of strings")
        unknown = set(item) - {"url", "username", "password", "password-file"}
        if unknown:
            raise ValueError(f"unknown credential field {sorted(unknown)[0]!r}")
        out.append(item)
    return out


def parse_command_line(argv: Sequence[str]) -> dict[str, Value]:
    """pflag-compatible parsing; only flags present on the command line are returned."""
    out: dict[str, Value] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            if i < len(args):
                raise UsageError(f"unexpected argument: {args[i]!r}")
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            has_value = bool(eq)
            flag = _BY_NAME.get(name)
            if flag is None or not name:
                raise UsageError(f"unknown flag: --{name}")
            shown = f"--{name}"
        elif arg.startswith("-") and len(arg) > 1:
            short = arg[1]
            flag = _BY_SHORT.get(short)
            if flag is None:
                raise UsageError(f"unknown shorthand flag: {short!r} in {arg}")
            rest = arg[2:]
            has_value = bool(rest)
            value = rest[1:] if rest.startswith("=") else rest
            shown = f"-{short}"
        else:
            raise UsageError(f"unexpected argument: {arg!r}")
        if not has_value:
            if flag.kind is Kind.BOOL:
                value = "true"
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise UsageError(f"flag needs an argument: {shown}")
        try:
            converted = _convert(flag, value, f"{shown} flag")
        except ValueError as err:
            raise UsageError(str(err)) from None
        if flag.kind in (Kind.STRINGS, Kind.CREDENTIALS) and flag.name in out:
            previous = out[flag.name]
            assert isinstance(previous, list) and isinstance(converted, list)
            out[flag.name] = [*previous, *converted]
        else:
            out[flag.name] = converted
    return out


def read_environment(env: Mapping[str, str], flags: Sequence[Flag]) -> dict[str, Value]:
    """Values from env vars; as upstream, a set-but-empty variable counts as set."""
    out: dict[str, Value] = {}
    for flag in flags:
        found: tuple[str, str] | None = None
        for key in flag.envs:
            if key in env:
                found = (key, env[key])  # later (deprecated) names win, as upstream
        if found is None:
            continue
        key, text = found
        if text == "" and flag.kind is not Kind.STRING:
            continue
        try:
            out[flag.name] = _convert(flag, text, f"${key}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return out


def collect(argv: Sequence[str], env: Mapping[str, str] | None = None) -> RawValues:
    """Merge defaults < environment < command line."""
    environ = os.environ if env is None else env
    from_env = read_environment(environ, [*FLAGS, *ENV_ONLY])
    from_cli = parse_command_line(argv)
    values: dict[str, Value] = {flag.name: flag.default for flag in (*FLAGS, *ENV_ONLY)}
    values.update(from_env)
    values.update(from_cli)
    return RawValues(values=values, given=frozenset(from_env) | frozenset(from_cli))


def usage() -> str:
    lines = ["Usage: git-sync [FLAGS...]", "", " FLAGS:"]
    for flag in FLAGS:
        short = f"-{flag.short}, " if flag.short else "    "
        envs = f" (env: {', '.join(flag.envs)})" if flag.envs else ""
        text = flag.help or HELP_TEXT.get(flag.name, "")
        lines.append(f"  {short}--{flag.name} {flag.kind.value}\n        {text}{envs}".rstrip())
    lines += ["", " ENVIRONMENT VARIABLES (only):"]
    lines += [f"  ${flag.envs[0]}" for flag in ENV_ONLY]
    return "\n".join(lines)
