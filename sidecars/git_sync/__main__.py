"""git-sync: parse the configuration, then wire the stages (loop → repo → publish → hooks, http).

Nothing below this module reads flags or environment variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

from sidecars.git_sync import config as config_mod
from sidecars.git_sync import pid1, signers
from sidecars.git_sync.config import Action, Config, PublishMode
from sidecars.git_sync.credentials import CredentialStore
from sidecars.git_sync.exchange import ExchangePublisher
from sidecars.git_sync.flags import FLAGS, ConfigError, UsageError, collect, usage
from sidecars.git_sync.gitconfig import PrivateConfig, parse_git_config, write_private_config
from sidecars.git_sync.gitexec import Git
from sidecars.git_sync.githubapp import GitHubApp, GitHubAppError
from sidecars.git_sync.hooks import Exechook, HookRunner, Webhook, hook_environment
from sidecars.git_sync.http import HttpEndpoint, HttpState
from sidecars.git_sync.jsonlog import Logger
from sidecars.git_sync.loop import Loop, Schedule
from sidecars.git_sync.publish import Publisher, SymlinkPublisher
from sidecars.git_sync.repo import Repo, RepoSettings
from sidecars.git_sync.sync import Syncer

MANUAL = """git-sync - sync a remote git repository into a local directory, atomically.

It fetches the --ref of --repo into --root, checks it out in <root>/.worktrees/<sha> and points
the --link symlink at it with an atomic rename. Flags, env vars ($GITSYNC_*, and the deprecated
$GIT_SYNC_* names), exit codes and metric names follow kubernetes/git-sync v4.

Beyond upstream:
  --sync-trigger-secret-file / $GITSYNC_SYNC_TRIGGER_SECRET  enable POST /sync for push webhooks
      (GitHub X-Hub-Signature-256, Gitea/Gogs signatures, GitLab X-Gitlab-Token); 401 otherwise.
  --publish-mode=exchange  publish a real directory, swapped with renameat2(RENAME_EXCHANGE).
  --verify-signatures --allowed-signers-file=F  publish only commits with a trusted signature
      (F: an SSH allowed-signers file or an OpenPGP public keyring).
"""


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and pid1.needed():
        print('{"level": 0, "msg": "detected pid 1, running init handler"}', file=sys.stderr)
        return pid1.run_as_init([sys.executable, "-m", "sidecars.git_sync", *sys.argv[1:]])
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        loaded = config_mod.load(args)
    except UsageError as err:
        print(f"{err}\nRun 'git-sync --help' for usage.", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(err, file=sys.stderr)
        _export_config_error(args, str(err))
        return 1
    if isinstance(loaded, Action):
        return _act(loaded)
    cfg = loaded
    log = Logger(cfg.verbose, cfg.error_file)
    for cred in cfg.credentials:
        log.redact.add(cred.password)
    log.redact.add(cfg.sync_trigger_secret)
    for notice in cfg.notices:
        log.info(0, notice)
    log.info(
        0,
        "starting up",
        version=version("podpatterns"),
        pid=os.getpid(),
        uid=os.getuid(),
        gid=os.getgid(),
        home=os.environ.get("HOME", ""),
        flags=_safe_flags(args),
    )
    if shutil.which(cfg.git) is None:
        log.error(f"{cfg.git!r} not found", "FATAL: git executable not found", git=cfg.git)
        return 1
    os.umask(0o002 if cfg.group_write else 0o022)
    try:
        cfg.root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.error(err, "FATAL: can't make root dir", path=str(cfg.root))
        return 1
    if cfg.add_user:
        _add_user(log)
    try:
        extra = parse_git_config(cfg.git_config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    private = write_private_config(
        group_write=cfg.group_write,
        ssh_key_files=cfg.ssh_key_files,
        ssh_known_hosts=cfg.ssh_known_hosts,
        ssh_known_hosts_file=cfg.ssh_known_hosts_file,
        cookie_file=cfg.cookie_file,
        extra=extra,
    )
    try:
        # Plain asyncio, not uvloop: git-sync's loop mostly waits on git children, and under
        # uvloop `git credential approve` (which spawns the credential-cache daemon) hung.
        return asyncio.run(_serve(cfg, private, log))
    except ConfigError as err:  # a problem found while wiring (e.g. an unreadable key file)
        print(err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_credential_cache(cfg.git, private)
        shutil.rmtree(private.directory, ignore_errors=True)


async def _serve(cfg: Config, private: PrivateConfig, log: Logger) -> int:
    root = cfg.root.resolve()
    link = root / cfg.link.relative_to(cfg.root) if cfg.link.is_relative_to(cfg.root) else cfg.link
    git = Git(cfg.git, private.path, log)
    git.env["GIT_SSH_COMMAND"] = private.ssh_command
    settings = RepoSettings(
        root=root,
        repo=cfg.repo,
        ref=cfg.ref,
        depth=cfg.depth,
        filter=cfg.filter,
        submodules=cfg.submodules,
        sparse_checkout_file=cfg.sparse_checkout_file,
    )
    repo = Repo(settings, git, log)
    publisher: Publisher = (
        ExchangePublisher(root, link, repo.worktrees, git)
        if cfg.publish_mode is PublishMode.EXCHANGE
        else SymlinkPublisher(root, link, repo.worktrees)
    )
    publisher.remove_leftovers()
    syncer = Syncer(
        repo,
        publisher,
        CredentialStore(cfg.credentials, cfg.askpass_url, cfg.repo, git, log, _github_app(cfg)),
        log,
        cfg.stale_worktree_timeout,
        cfg.git_gc,
        signers.prepare(cfg.allowed_signers_file, private.directory)
        if cfg.verify_signatures and cfg.allowed_signers_file
        else None,
    )
    hooks = _hooks(cfg, repo, log)
    state = HttpState()
    loop = Loop(
        Schedule(
            period=cfg.period,
            init_period=cfg.init_period,
            sync_timeout=cfg.sync_timeout,
            max_failures=cfg.max_failures,
            init_max_failures=cfg.init_max_failures,
            one_time=cfg.one_time,
            ref=cfg.ref,
            touch_file=cfg.touch_file,
        ),
        syncer,
        hooks,
        state,
        log,
    )
    running = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    stopped_by = 0

    def stop(signum: int) -> None:
        nonlocal stopped_by
        stopped_by = signum
        log.info(0, "caught signal, shutting down", signal=signal.Signals(signum).name)
        main_task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(signum, stop, signum)
    if cfg.sync_on_signal is not None:
        running.add_signal_handler(cfg.sync_on_signal, loop.wake)

    server = None
    background = [asyncio.create_task(h.run_forever()) for h in hooks]
    try:
        if cfg.http_bind:
            endpoint = HttpEndpoint(
                state,
                cfg.http_metrics,
                _trigger_secret(cfg),
                loop.pushed,
                log.named("http"),
                debug_enabled=cfg.http_pprof,
            )
            try:
                server = await endpoint.start(cfg.http_bind)
            except (OSError, ValueError) as err:
                log.error(err, "can't bind HTTP endpoint", endpoint=cfg.http_bind)
                return 1
        return await loop.run()
    except asyncio.CancelledError:
        if not stopped_by:
            raise
        # Whatever was in flight cleaned up after itself (see Repo.build_worktree); the link
        # swap is not interruptible, so the published tree is whole.
        publisher.remove_leftovers()
        # A stopped long-running sidecar did its job; a stopped --one-time run (an init
        # container) did not finish its one sync, and must not report success.
        return 128 + stopped_by if cfg.one_time else 0
    finally:
        for task in background:
            task.cancel()
        if server is not None:
            server.close()


def _github_app(cfg: Config) -> GitHubApp | None:
    settings = cfg.github_app
    if settings is None:
        return None
    key = settings.private_key
    if not key:
        try:
            key = Path(settings.private_key_file).read_text()
        except OSError as err:
            raise ConfigError(f"can't read --github-app-private-key-file: {err}") from None
    try:
        return GitHubApp(settings.base_url, key, settings.issuer, settings.installation_id)
    except GitHubAppError as err:
        raise ConfigError(f"invalid GitHub app private key: {err}") from None


def _hooks(cfg: Config, repo: Repo, log: Logger) -> list[HookRunner]:
    hooks: list[HookRunner] = []
    if cfg.webhook_url:
        hook_log = log.named("webhook")
        webhook = Webhook(
            cfg.webhook_url,
            cfg.webhook_method,
            cfg.webhook_success_status,
            cfg.webhook_timeout,
            hook_log,
        )
        hooks.append(HookRunner(webhook, "webhook", cfg.webhook_backoff, hook_log))
    if cfg.exechook_command:
        hook_log = log.named("exechook")
        exechook = Exechook(
            cfg.exechook_command,
            cfg.exechook_timeout,
            repo.worktree_for,
            hook_environment(),
            hook_log,
        )
        hooks.append(HookRunner(exechook, "exechook", cfg.exechook_backoff, hook_log))
    return hooks


def _trigger_secret(cfg: Config) -> Callable[[], bytes] | None:
    if cfg.sync_trigger_secret:
        secret = cfg.sync_trigger_secret.encode()
        return lambda: secret
    if cfg.sync_trigger_secret_file:
        path = Path(cfg.sync_trigger_secret_file)

        def read() -> bytes:
            # Re-read per request: a rotated Kubernetes Secret takes effect without a restart.
            try:
                return path.read_bytes().strip()
            except OSError:
                return b""

        return read
    return None


def _safe_flags(args: list[str]) -> list[str]:
    """The command line for the start-up log, without secrets."""
    secret = {f"--{flag.name}" for flag in FLAGS if flag.secret}
    out = []
    for arg in args:
        name = arg.partition("=")[0]
        out.append(f"{name}=REDACTED" if name in secret and "=" in arg else arg)
    return [config_mod.redact_url(arg) for arg in out]


def _export_config_error(args: list[str], message: str) -> None:
    """As upstream: a configuration error also goes to --error-file, when root and file are
    known, so a pod's error file explains why the sidecar never started."""
    try:
        raw = collect(args)
    except (UsageError, ConfigError):
        return
    root, error_file = raw.values["root"], raw.values["error-file"]
    if isinstance(root, str) and root and isinstance(error_file, str) and error_file:
        target = Path(error_file) if os.path.isabs(error_file) else Path(root) / error_file
        with open(os.devnull, "w") as sink:
            Logger(0, target, stream=sink).export_error(message)


def _act(action: Action) -> int:
    if action.kind == "version":
        text = version("podpatterns")
    elif action.kind == "help":
        text = usage()
    else:
        text = MANUAL + "\n" + usage()
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `git-sync --man | head`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _add_user(log: Logger) -> None:
    """--add-user: an /etc/passwd entry for our uid, which ssh needs."""
    import pwd

    try:
        pwd.getpwuid(os.getuid())
        return
    except KeyError:
        pass
    home = os.environ.get("HOME") or os.getcwd()
    try:
        with open("/etc/passwd", "a") as passwd:
            passwd.write(f"git-sync:x:{os.getuid()}:{os.getgid()}::{home}:/sbin/nologin\n")
    except OSError as err:
        log.error(err, "can't add user")


def _stop_credential_cache(git: str, private: PrivateConfig) -> None:
    """The cache daemon would outlive us by up to an hour; tell it to exit."""
    if not private.credential_socket.exists():
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [git, "credential-cache", f"--socket={private.credential_socket}", "exit"],
            env={**os.environ, "GIT_CONFIG_GLOBAL": str(private.path)},
            capture_output=True,
            timeout=5,
            check=False,
        )


if __name__ == "__main__":
    sys.exit(main())
