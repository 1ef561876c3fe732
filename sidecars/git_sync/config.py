"""From raw flag values to one frozen, validated ``Config``: the only place that knows about flags,
env vars and the deprecated v3 names. Every rule and message follows upstream's ``main.go``."""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sidecars.git_sync.flags import ConfigError, RawValues, Value, collect


class Submodules(Enum):
    RECURSIVE = "recursive"
    SHALLOW = "shallow"
    OFF = "off"


class GitGC(Enum):
    AUTO = "auto"
    ALWAYS = "always"
    AGGRESSIVE = "aggressive"
    OFF = "off"


class PublishMode(Enum):
    SYMLINK = "symlink"
    EXCHANGE = "exchange"


@dataclass(frozen=True)
class Credential:
    url: str
    username: str
    password: str = ""
    password_file: str = ""


@dataclass(frozen=True)
class GitHubAppSettings:
    base_url: str
    private_key: str
    private_key_file: str
    issuer: str  # the client ID, or the application ID
    installation_id: int


@dataclass(frozen=True)
class Config:
    repo: str
    ref: str
    depth: int
    filter: str
    submodules: Submodules
    sparse_checkout_file: Path | None
    root: Path
    link: Path
    error_file: Path | None
    period: float
    init_period: float
    sync_timeout: float
    one_time: bool
    sync_on_signal: int | None
    max_failures: int
    init_max_failures: int
    touch_file: Path | None
    add_user: bool
    group_write: bool
    stale_worktree_timeout: float
    exechook_command: str
    exechook_timeout: float
    exechook_backoff: float
    webhook_url: str
    webhook_method: str
    webhook_success_status: int
    webhook_timeout: float
    webhook_backoff: float
    credentials: tuple[Credential, ...]
    ssh_key_files: tuple[str, ...]
    ssh_known_hosts: bool
    ssh_known_hosts_file: str
    cookie_file: bool
    askpass_url: str
    github_app: GitHubAppSettings | None
    git: str
    git_config: str
    git_gc: GitGC
    http_bind: str
    http_metrics: bool
    http_pprof: bool
    verbose: int
    sync_trigger_secret: str
    sync_trigger_secret_file: str
    publish_mode: PublishMode
    verify_signatures: bool
    allowed_signers_file: Path | None
    # Informational lines ("setting --ref from deprecated --branch") to log once logging is up.
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Action:
    """What to do instead of syncing: print help, the manual or the version."""

    kind: str  # "help" | "man" | "version"


def _s(values: Mapping[str, Value], name: str) -> str:
    value = values[name]
    assert isinstance(value, str)
    return value


def _i(values: Mapping[str, Value], name: str) -> int:
    value = values[name]
    assert isinstance(value, int)
    return value


def _b(values: Mapping[str, Value], name: str) -> bool:
    value = values[name]
    assert isinstance(value, bool)
    return value


def _d(values: Mapping[str, Value], name: str) -> float:
    value = values[name]
    assert isinstance(value, int | float)
    return float(value)


def _abs_under(root: Path, path: str) -> Path | None:
    if not path:
        return None
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


def parse_signal(text: str) -> int:
    try:
        number = int(text, 0)
    except ValueError:
        name = text.upper()
        for candidate in (name, "SIG" + name):
            sig = getattr(signal.Signals, candidate, None)
            if isinstance(sig, signal.Signals):
                return int(sig)
        number = 0
    if number <= 0 or number >= signal.NSIG:
        raise ConfigError("invalid flag: --sync-on-signal must be a valid signal name or number")
    return number


def strip_url_credentials(repo: str) -> tuple[str, str, str | None]:
    """For http(s) URLs, split ``user:pass@`` off the URL: (url, username, password)."""
    try:
        parts = urlsplit(repo)
    except ValueError:
        return repo, "", None
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return repo, "", None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), user, password if has_password else None


def _auth(
    v: Mapping[str, Value], repo: str, notices: list[str]
) -> tuple[str, tuple[Credential, ...]]:
    """Username/password, credentials in the URL and --credential: the repo URL (without
    credentials) and every credential to store, the --repo one first."""
    fail = ConfigError
    username, password = _s(v, "username"), _s(v, "password-env")
    password_file = _s(v, "password-file")
    if _s(v, "password"):
        notices.append("setting $GITSYNC_PASSWORD from deprecated --password")
        password = _s(v, "password")
    plain_repo, url_user, url_password = strip_url_credentials(repo)
    if username:
        if not password and not password_file:
            raise fail(
                "required flag: $GITSYNC_PASSWORD or --password-file must be specified when "
                "--username is specified"
            )
        if password and password_file:
            raise fail(
                "invalid flag: only one of $GITSYNC_PASSWORD and --password-file may be specified"
            )
        if url_user or url_password is not None:
            raise fail(
                "invalid flag: credentials may not be specified in --repo when --username is "
                "specified"
            )
    else:
        if password:
            raise fail(
                "invalid flag: $GITSYNC_PASSWORD may only be specified when --username is specified"
            )
        if password_file:
            raise fail(
                "invalid flag: --password-file may only be specified when --username is specified"
            )
        if url_user:
            # As upstream: credentials embedded in an http(s) URL move to the credential store.
            repo, username, password = plain_repo, url_user, url_password or ""

    credentials: list[Credential] = []
    raw_credentials = v["credential"]
    assert isinstance(raw_credentials, list)
    for item in raw_credentials:
        assert isinstance(item, dict)
        cred = Credential(
            url=item.get("url", ""),
            username=item.get("username", ""),
            password=item.get("password", ""),
            password_file=item.get("password-file", ""),
        )
        if not cred.url:
            raise fail("invalid flag: --credential URL must be specified")
        if not cred.username:
            raise fail("invalid flag: --credential username must be specified")
        if not cred.password and not cred.password_file:
            raise fail("invalid flag: --credential password or password-file must be specified")
        if cred.password and cred.password_file:
            raise fail(
                "invalid flag: only one of --credential password and password-file may be specified"
            )
        credentials.append(cred)
    if username:
        credentials.insert(0, Credential(repo, username, password, password_file))
    return repo, tuple(credentials)


def _github_app(v: Mapping[str, Value]) -> GitHubAppSettings | None:
    fail = ConfigError
    app_id, client_id = _i(v, "github-app-application-id"), _s(v, "github-app-client-id")
    app_key, app_key_file = _s(v, "github-app-private-key"), _s(v, "github-app-private-key-file")
    installation = _i(v, "github-app-installation-id")
    if app_id or client_id:
        if app_id and client_id:
            raise fail(
                "invalid flag: only one of --github-app-application-id or --github-app-client-id "
                "may be specified"
            )
        if not installation:
            raise fail(
                "invalid flag: --github-app-installation-id must be specified when "
                "--github-app-application-id or --github-app-client-id are specified"
            )
        if not app_key and not app_key_file:
            raise fail(
                "invalid flag: $GITSYNC_GITHUB_APP_PRIVATE_KEY or --github-app-private-key-file "
                "must be specified when --github-app-application-id or --github-app-client-id "
                "are specified"
            )
        if app_key and app_key_file:
            raise fail(
                "invalid flag: only one of $GITSYNC_GITHUB_APP_PRIVATE_KEY or "
                "--github-app-private-key-file may be specified"
            )
        if _s(v, "username"):
            raise fail(
                "invalid flag: --username may not be specified when "
                "--github-app-private-key-file is specified"
            )
    elif installation:
        raise fail(
            "invalid flag: --github-app-installation-id may only be specified when "
            "--github-app-private-key-file is specified"
        )
    return (
        GitHubAppSettings(
            base_url=_s(v, "github-base-url"),
            private_key=app_key,
            private_key_file=app_key_file,
            issuer=client_id or str(app_id),
            installation_id=installation,
        )
        if app_id or client_id
        else None
    )


def build(raw: RawValues) -> Config:
    v = raw.values
    notices: list[str] = []
    fail = ConfigError

    root_text = _s(v, "root")
    if not root_text:
        raise fail("required flag: --root must be specified")
    root = Path(root_text).absolute()

    repo = _s(v, "repo")
    if not repo:
        raise fail("required flag: --repo must be specified")

    ref = _s(v, "ref")
    branch, rev = _s(v, "branch"), _s(v, "rev")
    if branch and rev and rev != "HEAD":
        raise fail(
            "deprecated flag combo: can't set --ref from deprecated --branch and --rev "
            "(one or the other is OK)"
        )
    if branch:
        notices.append("setting --ref from deprecated --branch")
        ref = branch
    elif rev:
        notices.append("setting --ref from deprecated --rev")
        ref = rev
    if not ref:
        raise fail("required flag: --ref must be specified")

    depth = _i(v, "depth")
    if depth < 0:
        raise fail("invalid flag: --depth must be greater than or equal to 0")
    try:
        submodules = Submodules(_s(v, "submodules"))
    except ValueError:
        raise fail(
            'invalid flag: --submodules must be one of "recursive", "shallow", or "off"'
        ) from None
    try:
        git_gc = GitGC(_s(v, "git-gc"))
    except ValueError:
        raise fail(
            'invalid flag: --git-gc must be one of "auto", "always", "aggressive", or "off"'
        ) from None
    try:
        publish_mode = PublishMode(_s(v, "publish-mode"))
    except ValueError:
        raise fail('invalid flag: --publish-mode must be one of "symlink" or "exchange"') from None

    link_text = _s(v, "link")
    if _s(v, "dest"):
        notices.append("setting --link from deprecated --dest")
        link_text = _s(v, "dest")
    if not link_text:
        link_text = repo.strip("/").split("/")[-1]
    link = _abs_under(root, link_text)
    assert link is not None

    period = _d(v, "period")
    if _d(v, "wait") != 0:
        notices.append("setting --period from deprecated --wait")
        period = int(_d(v, "wait") * 1000) / 1000
    if period < 0.01:
        raise fail("invalid flag: --period must be at least 10ms")
    init_period = _d(v, "init-period") or period
    if init_period < 0.01:
        raise fail("invalid flag: --init-period must be at least 10ms")

    if _i(v, "change-permissions") != 0:
        raise fail("deprecated flag: --change-permissions is no longer supported")

    sync_on_signal = parse_signal(_s(v, "sync-on-signal")) if _s(v, "sync-on-signal") else None

    sync_timeout = _d(v, "sync-timeout")
    if _i(v, "timeout") != 0:
        notices.append("setting --sync-timeout from deprecated --timeout")
        sync_timeout = float(_i(v, "timeout"))
    if sync_timeout < 0.01:
        raise fail("invalid flag: --sync-timeout must be at least 10ms")

    max_failures = _i(v, "max-failures")
    if _i(v, "max-sync-failures") != 0:
        notices.append("setting --max-failures from deprecated --max-sync-failures")
        max_failures = _i(v, "max-sync-failures")
    init_max_failures = (
        _i(v, "init-max-failures") if "init-max-failures" in raw.given else max_failures
    )

    exechook = _s(v, "exechook-command")
    if _s(v, "sync-hook-command"):
        notices.append("setting --exechook-command from deprecated --sync-hook-command")
        exechook = _s(v, "sync-hook-command")
    if exechook:
        if _d(v, "exechook-timeout") < 1:
            raise fail("invalid flag: --exechook-timeout must be at least 1s")
        if _d(v, "exechook-backoff") < 1:
            raise fail("invalid flag: --exechook-backoff must be at least 1s")

    webhook_status = _i(v, "webhook-success-status")
    if _s(v, "webhook-url"):
        if webhook_status == -1:
            webhook_status = 0  # upstream back-compat: -1 and 0 both mean "any status"
        if webhook_status < 0:
            raise fail("invalid flag: --webhook-success-status must be a valid HTTP code or 0")
        if _d(v, "webhook-timeout") < 1:
            raise fail("invalid flag: --webhook-timeout must be at least 1s")
        if _d(v, "webhook-backoff") < 1:
            raise fail("invalid flag: --webhook-backoff must be at least 1s")

    repo, credentials = _auth(v, repo, notices)
    github_app = _github_app(v)

    if not _s(v, "http-bind"):
        if _b(v, "http-metrics"):
            raise fail("required flag: --http-bind must be specified when --http-metrics is set")
        if _b(v, "http-pprof"):
            raise fail("required flag: --http-bind must be specified when --http-pprof is set")

    trigger_secret, trigger_file = _s(v, "sync-trigger-secret"), _s(v, "sync-trigger-secret-file")
    if (trigger_secret or trigger_file) and not _s(v, "http-bind"):
        raise fail("required flag: --http-bind must be specified when a sync trigger secret is set")
    if trigger_secret and trigger_file:
        raise fail(
            "invalid flag: only one of $GITSYNC_SYNC_TRIGGER_SECRET and "
            "--sync-trigger-secret-file may be specified"
        )

    allowed_signers = _s(v, "allowed-signers-file")
    if _b(v, "verify-signatures") and not allowed_signers:
        raise fail(
            "required flag: --allowed-signers-file must be specified when "
            "--verify-signatures is set"
        )

    verbose = _i(v, "verbose")
    if _i(v, "v") >= 0:
        verbose = _i(v, "v")

    ssh_keys = v["ssh-key-file"]
    assert isinstance(ssh_keys, list)
    return Config(
        repo=repo,
        ref=ref,
        depth=depth,
        filter=_s(v, "filter"),
        submodules=submodules,
        sparse_checkout_file=_abs_under(Path.cwd(), _s(v, "sparse-checkout-file")),
        root=root,
        link=link,
        error_file=_abs_under(root, _s(v, "error-file")),
        period=period,
        init_period=init_period,
        sync_timeout=sync_timeout,
        one_time=_b(v, "one-time"),
        sync_on_signal=sync_on_signal,
        max_failures=max_failures,
        init_max_failures=init_max_failures,
        touch_file=_abs_under(root, _s(v, "touch-file")),
        add_user=_b(v, "add-user"),
        group_write=_b(v, "group-write"),
        stale_worktree_timeout=_d(v, "stale-worktree-timeout"),
        exechook_command=exechook,
        exechook_timeout=_d(v, "exechook-timeout"),
        exechook_backoff=_d(v, "exechook-backoff"),
        webhook_url=_s(v, "webhook-url"),
        webhook_method=_s(v, "webhook-method"),
        webhook_success_status=webhook_status,
        webhook_timeout=_d(v, "webhook-timeout"),
        webhook_backoff=_d(v, "webhook-backoff"),
        credentials=credentials,
        ssh_key_files=tuple(str(key) for key in ssh_keys),
        ssh_known_hosts=_b(v, "ssh-known-hosts"),
        ssh_known_hosts_file=_s(v, "ssh-known-hosts-file"),
        cookie_file=_b(v, "cookie-file"),
        askpass_url=_s(v, "askpass-url"),
        github_app=github_app,
        git=_s(v, "git"),
        git_config=_s(v, "git-config"),
        git_gc=git_gc,
        http_bind=_s(v, "http-bind"),
        http_metrics=_b(v, "http-metrics"),
        http_pprof=_b(v, "http-pprof"),
        verbose=verbose,
        sync_trigger_secret=trigger_secret,
        sync_trigger_secret_file=trigger_file,
        publish_mode=publish_mode,
        verify_signatures=_b(v, "verify-signatures"),
        allowed_signers_file=_abs_under(Path.cwd(), allowed_signers),
        notices=tuple(notices),
    )


def load(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Config | Action:
    """Parse the command line and environment. Raises UsageError (exit 2) or ConfigError (1)."""
    raw = collect(argv, env)
    for name in ("version", "help", "man"):
        if raw.values[name] is True:
            return Action(name)
    return build(raw)


def redact_url(url: str) -> str:
    """``https://user:secret@host/x`` → ``https://user:REDACTED@host/x``, for logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc or ":" not in parts.netloc.rpartition("@")[0]:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:REDACTED@{host}"))
