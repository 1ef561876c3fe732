"""git-sync against real git remotes, run as the installed console script."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.fixtures.git_remote import GitHttpRemote, GitRemote, git
from tests.integration.git_sync_process import (
    Start,
    http_get,
    metric,
    published_hash,
    wait_for,
)


def common(remote: str, root: Path, *extra: str) -> list[str]:
    return [f"--repo={remote}", f"--root={root}", "--link=current", *extra]


# -- the on-disk contract ------------------------------------------------------------------------


def test_initial_sync_publishes_a_relative_link_to_a_worktree_per_commit(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, "--ref=main", "--one-time"))
    assert sync.wait_exit() == 0, sync.logs()
    link = root / "current"
    target = os.readlink(link)
    assert not os.path.isabs(target)
    assert os.path.basename(target) == git_remote.head()
    assert Path(target).parent == Path(".worktrees")
    assert (link / "index.html").read_text() == "<h1>first</h1>\n"
    gitdir = (link / ".git").read_text()
    assert gitdir.startswith("gitdir: ../../.git/worktrees/")
    # The root holds the repository, never a checkout.
    assert sorted(p.name for p in root.iterdir()) == [".git", ".worktrees", "current"]
    assert git("rev-parse", "HEAD", cwd=link) == git_remote.head()


def test_update_after_push_moves_the_link_and_removes_the_old_worktree(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    root = tmp_path / "root"
    link = root / "current"
    start_git_sync(*common(git_remote.url, root, "--period=100ms", "--git-gc=off"))
    first = git_remote.head()
    wait_for(lambda: published_hash(link) == first, what="first sync")
    second = git_remote.commit({"index.html": "<h1>second</h1>\n"})
    wait_for(lambda: published_hash(link) == second, what="second commit published")
    assert (link / "index.html").read_text() == "<h1>second</h1>\n"
    wait_for(lambda: not (root / ".worktrees" / first).exists(), what="stale worktree removed")


@pytest.mark.parametrize("kind", ["tag", "annotated", "sha"])
def test_tags_annotated_tags_and_shas(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, kind: str
) -> None:
    first = git_remote.head()
    if kind == "sha":
        ref = first
    else:
        ref = "v1.0"
        git_remote.tag(ref, annotated=kind == "annotated")
    git_remote.commit({"index.html": "<h1>later</h1>\n"})  # the branch moves on
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, f"--ref={ref}", "--one-time"))
    assert sync.wait_exit() == 0, sync.logs()
    assert published_hash(root / "current") == first
    assert (root / "current" / "index.html").read_text() == "<h1>first</h1>\n"


def test_nonexistent_ref_exits_non_zero_without_a_link(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, "--ref=no-such-branch"))
    assert sync.wait_exit() == 1
    assert not os.path.lexists(root / "current")
    errors = [r for r in sync.log_records() if r.get("error")]
    assert errors and "no-such-branch" in str(errors[-1]["error"])


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--no-such-flag"], 2, "unknown flag: --no-such-flag"),
        (["--period=soon"], 2, "invalid value 'soon' for --period flag"),
        (["--period=1ms"], 1, "invalid flag: --period must be at least 10ms"),
        (["--submodules=maybe"], 1, "--submodules must be one of"),
    ],
)
def test_malformed_flags_give_one_clear_line(
    tmp_path: Path, start_git_sync: Start, argv: list[str], code: int, message: str
) -> None:
    sync = start_git_sync("--repo=file:///nowhere", f"--root={tmp_path / 'r'}", *argv)
    assert sync.wait_exit() == code
    output = sync.logs()
    assert message in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 2


def test_config_errors_also_go_to_the_error_file(tmp_path: Path, start_git_sync: Start) -> None:
    root = tmp_path / "root"
    sync = start_git_sync(
        "--repo=file:///x", f"--root={root}", "--error-file=err.json", "--period=1ms"
    )
    assert sync.wait_exit() == 1
    payload = json.loads((root / "err.json").read_text())
    assert payload["Msg"] == "invalid flag: --period must be at least 10ms"


def test_malformed_env_gives_one_clear_line(tmp_path: Path, start_git_sync: Start) -> None:
    sync = start_git_sync(
        env={"GITSYNC_REPO": "file:///x", "GITSYNC_ROOT": str(tmp_path), "GITSYNC_DEPTH": "deep"}
    )
    assert sync.wait_exit() == 1
    assert (
        sync.logs().strip()
        == "invalid value 'deep' for $GITSYNC_DEPTH: invalid literal for int() with base 10: 'deep'"
    )


# -- failures ------------------------------------------------------------------------------------


def test_remote_down_keeps_the_last_good_tree_counts_failures_and_recovers(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    root, port = tmp_path / "root", unused_port()
    link = root / "current"
    start_git_sync(
        *common(git_remote.url, root, "--period=100ms", "--max-failures=-1"),
        f"--http-bind=127.0.0.1:{port}",
        "--http-metrics",
    )
    first = git_remote.head()
    wait_for(lambda: published_hash(link) == first, what="first sync")
    hidden = git_remote.bare.with_name("hidden.git")
    git_remote.bare.rename(hidden)
    try:

        def errors() -> float:
            return metric(
                http_get(f"http://127.0.0.1:{port}/metrics")[1],
                "git_sync_count_total",
                'status="error"',
            )

        wait_for(lambda: errors() >= 3, what="three failed syncs counted")
        assert published_hash(link) == first
        assert (link / "index.html").read_text() == "<h1>first</h1>\n"
        assert http_get(f"http://127.0.0.1:{port}/")[0] == 200
    finally:
        hidden.rename(git_remote.bare)
    second = git_remote.commit({"index.html": "<h1>back</h1>\n"})
    wait_for(lambda: published_hash(link) == second, what="recovery after the remote returns")


def test_max_failures_is_honoured(tmp_path: Path, start_git_sync: Start) -> None:
    sync = start_git_sync(
        *common(f"file://{tmp_path}/missing.git", tmp_path / "root", "--period=10ms"),
        "--max-failures=2",
    )
    assert sync.wait_exit() == 1
    messages = [r["msg"] for r in sync.log_records()]
    assert messages.count("error syncing repo, will retry") == 2
    assert messages.count("too many failures, aborting") == 1


def test_force_push_and_deleted_branch(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    root = tmp_path / "root"
    link = root / "current"
    first = git_remote.head()
    feature = git_remote.commit({"f.txt": "feature\n"}, branch="feature")
    sync = start_git_sync(
        *common(git_remote.url, root, "--ref=feature", "--period=50ms", "--max-failures=-1")
    )
    wait_for(lambda: published_hash(link) == feature, what="feature published")
    # Force-push the branch back to the first commit.
    git("push", "-q", "--force", "origin", f"{first}:refs/heads/feature", cwd=git_remote.work)
    wait_for(lambda: published_hash(link) == first, what="force-push followed")
    # Delete the branch: the last good tree stays published and errors are logged.
    git("push", "-q", "origin", ":refs/heads/feature", cwd=git_remote.work)
    wait_for(lambda: "error syncing repo" in sync.logs(), what="deleted branch reported")
    assert published_hash(link) == first


# -- auth ----------------------------------------------------------------------------------------


def test_http_basic_auth_with_password_file(
    git_http_remote: GitHttpRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(git_http_remote.password)
    # Record every git command line and environment: the password must be in none of them.
    argv_log = tmp_path / "git-argv"
    wrapper = tmp_path / "recording-git"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {argv_log}\nenv >> {argv_log}\nexec git "$@"\n')
    wrapper.chmod(0o755)
    root = tmp_path / "root"
    sync = start_git_sync(
        *common(git_http_remote.url, root, "--one-time", "-v", "6"),
        f"--username={git_http_remote.username}",
        f"--password-file={password_file}",
        f"--git={wrapper}",
    )
    assert sync.wait_exit() == 0, sync.logs()
    assert published_hash(root / "current") == git_http_remote.remote.head()
    assert git_http_remote.password not in sync.logs()
    recorded = argv_log.read_text()
    assert "credential approve" in recorded
    assert git_http_remote.password not in recorded


def test_password_from_env_and_wrong_password(
    git_http_remote: GitHttpRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    ok = start_git_sync(
        *common(git_http_remote.url, tmp_path / "ok", "--one-time"),
        env={
            "GITSYNC_USERNAME": git_http_remote.username,
            "GITSYNC_PASSWORD": git_http_remote.password,
        },
    )
    assert ok.wait_exit() == 0, ok.logs()
    bad = start_git_sync(
        *common(git_http_remote.url, tmp_path / "bad", "--one-time"),
        env={"GITSYNC_USERNAME": git_http_remote.username, "GITSYNC_PASSWORD": "wrong-pass"},
    )
    assert bad.wait_exit() == 1
    assert not os.path.lexists(tmp_path / "bad" / "current")
    assert "wrong-pass" not in bad.logs()


def test_credentials_in_the_url_are_redacted(
    git_http_remote: GitHttpRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    url = git_http_remote.url.replace(
        "http://", f"http://{git_http_remote.username}:{git_http_remote.password}@"
    )
    root = tmp_path / "root"
    sync = start_git_sync(*common(url, root, "--one-time", "-v", "6"))
    assert sync.wait_exit() == 0, sync.logs()
    assert published_hash(root / "current") == git_http_remote.remote.head()
    assert git_http_remote.password not in sync.logs()
    assert "REDACTED" in sync.logs()
    # The password never reached git's command line: it went through the credential cache.
    assert git_http_remote.password not in (root / ".git" / "config").read_text()


def test_password_file_is_reread_every_sync(
    git_http_remote: GitHttpRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("not-yet-right")
    root = tmp_path / "root"
    start_git_sync(
        *common(git_http_remote.url, root, "--period=100ms", "--max-failures=-1"),
        f"--username={git_http_remote.username}",
        f"--password-file={password_file}",
    )
    wait_for(lambda: len(git_http_remote.requests) >= 2, what="a refused attempt")
    assert not os.path.lexists(root / "current")
    password_file.write_text(git_http_remote.password)
    wait_for(
        lambda: published_hash(root / "current") == git_http_remote.remote.head(),
        what="sync after the Secret was updated",
    )


# -- error file, touch file, readiness -----------------------------------------------------------


def test_error_file_holds_the_git_error_and_is_removed_after_success(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    root, port = tmp_path / "root", unused_port()
    start_git_sync(
        *common(git_remote.url, root, "--ref=later", "--period=100ms", "--max-failures=-1"),
        "--error-file=error.json",
        "--touch-file=synced",
        f"--http-bind=127.0.0.1:{port}",
    )
    error_file = root / "error.json"
    wait_for(error_file.exists, what="error file")
    payload = json.loads(error_file.read_text())
    assert set(payload) == {"Msg", "Err", "Args"}
    assert "later" in payload["Err"]
    assert http_get(f"http://127.0.0.1:{port}/")[0] == 503
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 503
    assert not (root / "synced").exists()
    later = git_remote.commit({"index.html": "later\n"}, branch="later")
    wait_for(lambda: published_hash(root / "current") == later, what="ref appears")
    wait_for(lambda: not error_file.exists(), what="error file removed")
    assert (root / "synced").exists()
    assert http_get(f"http://127.0.0.1:{port}/")[0] == 200


# -- hooks ---------------------------------------------------------------------------------------


def test_exechook_runs_in_the_worktree_with_the_hash(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    out = tmp_path / "hook.out"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$GITSYNC_HASH $(pwd) $(cat index.html)" >> {out}\n')
    hook.chmod(0o755)
    root, port = tmp_path / "root", unused_port()
    start_git_sync(
        *common(git_remote.url, root, "--period=100ms"),
        f"--exechook-command={hook}",
        f"--http-bind=127.0.0.1:{port}",
        "--http-metrics",
    )
    first = git_remote.head()
    wait_for(lambda: out.exists() and first in out.read_text(), what="hook for the first sync")
    second = git_remote.commit({"index.html": "two"})
    wait_for(lambda: second in out.read_text(), what="hook for the second commit")
    lines = out.read_text().splitlines()
    assert lines[-1] == f"{second} {root.resolve() / '.worktrees' / second} two"

    def successes() -> float:
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        return metric(text, "git_sync_hook_run_count_total", 'name="exechook",status="success"')

    # The hook writes its line before it exits; the counter moves when it has exited.
    wait_for(lambda: successes() >= 2, what="two successful hook runs counted")


def test_failing_exechook_fails_one_time(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    sync = start_git_sync(
        *common(git_remote.url, tmp_path / "root", "--one-time"),
        "--exechook-command=/bin/false",
    )
    assert sync.wait_exit() == 1


class _Recorder(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        type(self).calls.append((self.command, self.headers.get("Gitsync-Hash", "")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def test_webhook_is_called_with_the_hash(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    _Recorder.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sync = start_git_sync(
            *common(git_remote.url, tmp_path / "root", "--one-time"),
            f"--webhook-url=http://127.0.0.1:{server.server_address[1]}/hook",
        )
        assert sync.wait_exit() == 0, sync.logs()
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.calls == [("POST", git_remote.head())]


# -- signals and the push trigger ----------------------------------------------------------------


def test_sync_on_signal(git_remote: GitRemote, tmp_path: Path, start_git_sync: Start) -> None:
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, "--period=1h", "--sync-on-signal=HUP"))
    wait_for(lambda: published_hash(root / "current") == git_remote.head(), what="first sync")
    second = git_remote.commit({"index.html": "signalled"})
    sync.signal(signal.SIGHUP)
    wait_for(lambda: published_hash(root / "current") == second, what="sync on SIGHUP")


def test_push_trigger_requires_a_valid_signature(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    import urllib.error
    import urllib.request

    from sidecars.git_sync.trigger import sign

    root, port = tmp_path / "root", unused_port()
    secret_file = tmp_path / "secret"
    secret_file.write_text("webhook-secret\n")
    start_git_sync(
        *common(git_remote.url, root, "--period=1h"),
        f"--http-bind=127.0.0.1:{port}",
        "--http-metrics",
        f"--sync-trigger-secret-file={secret_file}",
    )
    wait_for(lambda: published_hash(root / "current") == git_remote.head(), what="first sync")
    second = git_remote.commit({"index.html": "pushed"})

    def post(headers: dict[str, str], body: bytes) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/sync", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    body = b'{"ref":"refs/heads/main"}'
    assert post({}, body) == 401
    assert post({"X-Hub-Signature-256": sign(b"wrong", body)}, body) == 401
    assert published_hash(root / "current") != second
    assert post({"X-Hub-Signature-256": sign(b"webhook-secret", body)}, body) == 202
    wait_for(lambda: published_hash(root / "current") == second, what="triggered sync")
    text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    assert metric(text, "git_sync_trigger_requests_total", 'status="unauthorized"') == 2
    assert metric(text, "git_sync_trigger_requests_total", 'status="accepted"') == 1


# -- atomic publish and graceful shutdown --------------------------------------------------------


def _slow_git(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A ``--git`` wrapper that, once armed, stalls right after ``git worktree add`` (the worktree
    exists but is not published yet), so a SIGTERM lands in the middle of a sync."""
    armed, started = tmp_path / "armed", tmp_path / "started"
    wrapper = tmp_path / "slow-git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = worktree ] && [ "$2" = add ] && [ -e {armed} ]; then\n'
        f'  git "$@"; touch {started}; exec sleep 60\n'
        "fi\n"
        'exec git "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, armed, started


@pytest.mark.parametrize("mode", ["symlink", "exchange"])
def test_sigterm_during_a_sync_leaves_no_temp_link_and_no_half_worktree(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, mode: str
) -> None:
    wrapper, armed, started = _slow_git(tmp_path)
    root = tmp_path / "root"
    link = root / "current"
    sync = start_git_sync(
        *common(git_remote.url, root, "--period=100ms", f"--git={wrapper}"),
        f"--publish-mode={mode}",
    )
    first = git_remote.head()
    marker = root / ".git" / "gitsync-published-current"

    def published() -> str:
        if mode == "symlink":
            return published_hash(link)
        # The first publish moves the directory into place, then writes the marker (atomically,
        # and it is never removed): until then nothing counts as published.
        return marker.read_text().strip() if marker.exists() else ""

    wait_for(lambda: (root / ".worktrees" / first).exists() and link.exists(), what="first sync")
    wait_for(lambda: published() == first, what="first sync published")
    armed.touch()
    second = git_remote.commit({"index.html": "never published"})
    wait_for(started.exists, what="the sync to stall inside worktree add")
    assert (root / ".worktrees" / second).exists()  # half-way: built but not published
    sync.signal(signal.SIGTERM)
    assert sync.wait_exit(timeout=15) == 0, sync.logs()
    assert not os.path.lexists(root / "tmp-link")
    assert sorted(p.name for p in (root / ".worktrees").iterdir()) == [first]
    assert sorted(p.name for p in (root / ".git" / "worktrees").iterdir()) == [first]
    assert published() == first
    assert (link / "index.html").read_text() == "<h1>first</h1>\n"
    assert not [p for p in root.iterdir() if p.name.startswith((".gitsync-staging", "tmp-"))]


@pytest.mark.parametrize("mode", ["symlink", "exchange"])
def test_a_reader_never_sees_files_from_two_commits(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, mode: str
) -> None:
    """A consumer opens the published directory once and reads two files that must agree
    (a page and its asset); over 200 updates it must never see a mix."""
    root = tmp_path / "root"
    link = root / "current"
    git_remote.commit({"a.txt": "0\n", "b.txt": "0\n"})
    sync = start_git_sync(
        *common(git_remote.url, root, "--period=1h", "--sync-on-signal=HUP", "--git-gc=off"),
        f"--publish-mode={mode}",
    )
    wait_for(lambda: (link / "a.txt").exists(), what="first sync")
    stop = threading.Event()
    seen: set[str] = set()
    mixes: list[tuple[str, str]] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                fd = os.open(link, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                a = _read_at(fd, "a.txt")
                b = _read_at(fd, "b.txt")
            except OSError:
                continue  # the old tree was removed under us: the next open sees the new one
            finally:
                os.close(fd)
            reads[0] += 1
            seen.add(a)
            if a != b:
                mixes.append((a, b))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for version in range(1, 201):
            text = f"{version}\n"
            git_remote.commit({"a.txt": text, "b.txt": text}, message=f"v{version}")
            sync.signal(signal.SIGHUP)
            wait_for(
                lambda text=text: _read_quietly(link / "a.txt") == text,  # type: ignore[misc]
                timeout=20,
                what=f"version {version} published",
            )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert mixes == []
    assert reads[0] > 200
    assert len(seen) > 50  # the reader really ran across many updates


def _read_at(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd) as handle:
        return handle.read()


def _read_quietly(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_http_pprof_serves_a_stack_dump(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    port = unused_port()
    start_git_sync(
        *common(git_remote.url, tmp_path / "root", "--period=1s"),
        f"--http-bind=127.0.0.1:{port}",
        "--http-pprof",
    )
    url = f"http://127.0.0.1:{port}/debug/pprof/goroutine"
    wait_for(lambda: http_get(url)[0] == 200, what="pprof endpoint")
    body = http_get(url)[1]
    assert "task" in body and "thread" in body


def test_metrics_use_upstream_names(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    root, port = tmp_path / "root", unused_port()
    start_git_sync(
        *common(git_remote.url, root, "--period=50ms"),
        f"--http-bind=127.0.0.1:{port}",
        "--http-metrics",
    )
    wait_for(lambda: published_hash(root / "current") == git_remote.head(), what="first sync")

    def scraped() -> str:
        return http_get(f"http://127.0.0.1:{port}/metrics")[1]

    wait_for(lambda: metric(scraped(), "git_sync_count_total", 'status="noop"') >= 2, what="noops")
    # Without --http-pprof the debug path is just the readiness check (upstream's catch-all).
    assert http_get(f"http://127.0.0.1:{port}/debug/pprof/") == (200, "")
    assert http_get(f"http://127.0.0.1:{port}/healthz") == (200, "")
    text = scraped()
    assert metric(text, "git_sync_count_total", 'status="success"') == 1
    assert metric(text, "git_fetch_count_total") == 1
    assert metric(text, "git_sync_duration_seconds_count", 'status="success"') == 1
    assert metric(text, "git_sync_askpass_calls", 'status="success"') == 0
    assert 'git_sync_askpass_calls{status="error"} 0.0' in text
    assert "# TYPE git_sync_hook_run_count_total counter" in text


# -- recovery and layout -------------------------------------------------------------------------


def test_recovers_when_the_worktree_or_the_link_is_removed(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    import shutil

    root = tmp_path / "root"
    link = root / "current"
    start_git_sync(*common(git_remote.url, root, "--period=50ms"))
    head = git_remote.head()
    wait_for(lambda: published_hash(link) == head, what="first sync")
    shutil.rmtree(root / ".worktrees" / head)
    wait_for(lambda: (link / "index.html").exists(), what="worktree rebuilt")
    link.unlink()
    wait_for(lambda: (link / "index.html").exists(), what="link restored")
    assert published_hash(link) == head


def test_corrupt_root_is_wiped_and_resynced(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "junk.txt").write_text("left over by something else")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("garbage\n")
    sync = start_git_sync(*common(git_remote.url, root, "--one-time"))
    assert sync.wait_exit() == 0, sync.logs()
    assert not (root / "junk.txt").exists()
    assert published_hash(root / "current") == git_remote.head()


def test_v3_layout_is_migrated(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    """v3 kept a checkout in the root and worktrees at ``<root>/<sha>``."""
    root = tmp_path / "root"
    head = git_remote.head()
    git("clone", "-q", git_remote.url, str(root))
    git("worktree", "add", "-q", "--detach", str(root / head), head, cwd=root)
    os.symlink(head, root / "current")
    sync = start_git_sync(*common(git_remote.url, root, "--one-time"))
    assert sync.wait_exit() == 0, sync.logs()
    assert os.readlink(root / "current") == f".worktrees/{head}"
    assert not (root / head).exists()
    assert (root / "current" / "index.html").read_text() == "<h1>first</h1>\n"


def test_askpass_url_supplies_credentials(
    git_http_remote: GitHttpRemote,
    tmp_path: Path,
    start_git_sync: Start,
    unused_port: Callable[[], int],
) -> None:
    body = f"username={git_http_remote.username}\npassword={git_http_remote.password}\n".encode()

    class Askpass(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Askpass)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = unused_port()
    root = tmp_path / "root"
    try:
        sync = start_git_sync(
            *common(git_http_remote.url, root, "--period=10s"),
            f"--askpass-url=http://127.0.0.1:{server.server_address[1]}/creds",
            f"--http-bind=127.0.0.1:{port}",
            "--http-metrics",
        )
        wait_for(
            lambda: published_hash(root / "current") == git_http_remote.remote.head(),
            what="sync with askpass credentials",
        )
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        assert metric(text, "git_sync_askpass_calls", 'status="success"') >= 1
        assert git_http_remote.password not in sync.logs()
    finally:
        server.shutdown()
        server.server_close()


def test_verify_signatures_publishes_only_trusted_commits(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    import subprocess

    from tests.fixtures.requirements import require_program

    keygen = require_program("ssh-keygen")
    key = tmp_path / "signing-key"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"test@podpatterns.invalid {(tmp_path / 'signing-key.pub').read_text()}")
    signed = git_remote.commit({"index.html": "signed\n"}, sign_with=key)
    root, port = tmp_path / "root", unused_port()
    sync = start_git_sync(
        *common(git_remote.url, root, "--period=50ms", "--max-failures=-1"),
        "--verify-signatures",
        f"--allowed-signers-file={signers}",
        f"--http-bind=127.0.0.1:{port}",
        "--http-metrics",
    )
    wait_for(lambda: published_hash(root / "current") == signed, what="signed commit published")
    git_remote.commit({"index.html": "unsigned\n"})
    wait_for(lambda: "no trusted signature" in sync.logs(), what="unsigned commit refused")
    assert published_hash(root / "current") == signed
    text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    assert metric(text, "git_sync_verify_failures_total") >= 1


# -- sync options --------------------------------------------------------------------------------


def test_sparse_checkout_file(git_remote: GitRemote, tmp_path: Path, start_git_sync: Start) -> None:
    git_remote.commit({"docs/a.md": "a\n", "src/b.py": "b\n"})
    sparse = tmp_path / "sparse"
    sparse.write_text("/docs/\n")
    root = tmp_path / "root"
    sync = start_git_sync(
        *common(git_remote.url, root, "--one-time"), f"--sparse-checkout-file={sparse}"
    )
    assert sync.wait_exit() == 0, sync.logs()
    assert (root / "current" / "docs" / "a.md").read_text() == "a\n"
    assert not (root / "current" / "src").exists()


def test_submodules_with_git_config(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    from tests.fixtures.git_remote import make_git_remote

    library = make_git_remote(tmp_path / "lib")
    library.commit({"lib.txt": "library\n"})
    git(
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        library.url,
        "vendor/lib",
        cwd=git_remote.work,
    )
    git_remote.commit({}, message="add submodule")
    root = tmp_path / "root"
    sync = start_git_sync(
        *common(git_remote.url, root, "--one-time"),
        "--git-config=protocol.file.allow:always",
    )
    assert sync.wait_exit() == 0, sync.logs()
    assert (root / "current" / "vendor" / "lib" / "lib.txt").read_text() == "library\n"
    off = start_git_sync(
        *common(git_remote.url, tmp_path / "off", "--one-time", "--submodules=off")
    )
    assert off.wait_exit() == 0, off.logs()
    assert not (tmp_path / "off" / "current" / "vendor" / "lib" / "lib.txt").exists()


def test_depth_zero_fetches_full_history(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    for i in range(3):
        git_remote.commit({"n.txt": f"{i}\n"})
    shallow, full = tmp_path / "shallow", tmp_path / "full"
    a = start_git_sync(*common(git_remote.url, shallow, "--one-time"))
    b = start_git_sync(*common(git_remote.url, full, "--one-time", "--depth=0"))
    assert a.wait_exit() == 0 and b.wait_exit() == 0
    assert git("rev-list", "--count", "HEAD", cwd=shallow / "current") == "1"
    assert git("rev-list", "--count", "HEAD", cwd=full / "current") == "4"


def test_partial_clone_filter(git_remote: GitRemote, tmp_path: Path, start_git_sync: Start) -> None:
    git("config", "uploadpack.allowFilter", "true", cwd=git_remote.bare)
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, "--one-time", "--filter=blob:none"))
    assert sync.wait_exit() == 0, sync.logs()
    assert (root / "current" / "index.html").read_text() == "<h1>first</h1>\n"
    assert "partialclonefilter=blob:none" in git("config", "--list", cwd=root)


def test_sync_timeout_abandons_a_stuck_sync_cleanly(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    wrapper, armed, started = _slow_git(tmp_path)
    armed.touch()
    root = tmp_path / "root"
    sync = start_git_sync(
        *common(git_remote.url, root, "--sync-timeout=5s", f"--git={wrapper}", "--max-failures=0")
    )
    assert sync.wait_exit(timeout=30) == 1
    assert started.exists()
    assert "timed out" in sync.logs()
    assert not os.path.lexists(root / "current")
    assert list((root / ".worktrees").iterdir()) == []


def test_stale_worktree_timeout_keeps_old_trees_for_a_while(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    root = tmp_path / "root"
    link = root / "current"
    start_git_sync(*common(git_remote.url, root, "--period=50ms", "--stale-worktree-timeout=4s"))
    first = git_remote.head()
    wait_for(lambda: published_hash(link) == first, what="first sync")
    second = git_remote.commit({"index.html": "two"})
    wait_for(lambda: published_hash(link) == second, what="second sync")
    assert (root / ".worktrees" / first).exists()
    wait_for(lambda: not (root / ".worktrees" / first).exists(), timeout=20, what="expiry")


def test_unresolvable_host_is_a_counted_failure(tmp_path: Path, start_git_sync: Start) -> None:
    sync = start_git_sync(
        *common("http://git.podpatterns.invalid/site.git", tmp_path / "root", "--one-time"),
        "--error-file=error.json",
    )
    assert sync.wait_exit() == 1
    assert "git.podpatterns.invalid" in (tmp_path / "root" / "error.json").read_text()


def test_github_app_token_is_fetched_and_used(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start, unused_port: Callable[[], int]
) -> None:
    """A local stub of GitHub's token endpoint; the git server accepts only the token it issued."""
    import subprocess

    from tests.fixtures.git_remote import http_backend_handler
    from tests.fixtures.requirements import require_program

    key = tmp_path / "app-key"
    subprocess.run(
        [
            require_program("ssh-keygen"),
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-m",
            "PEM",
            "-N",
            "",
            "-f",
            str(key),
        ],
        check=True,
    )
    token = "ghs_installation_token_1234"
    seen: list[tuple[str, str]] = []

    class TokenEndpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"token": token, "expires_at": "2099-01-01T00:00:00Z"}).encode()
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    api = ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    log: list[str] = []
    git_server = ThreadingHTTPServer(
        ("127.0.0.1", 0), http_backend_handler(git_remote.bare.parent, "-", token, log)
    )
    for server in (api, git_server):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = unused_port()
    root = tmp_path / "root"
    try:
        sync = start_git_sync(
            *common(f"http://127.0.0.1:{git_server.server_address[1]}/remote.git", root),
            f"--github-base-url=http://127.0.0.1:{api.server_address[1]}/",
            "--github-app-application-id=42",
            "--github-app-installation-id=7",
            f"--github-app-private-key-file={key}",
            f"--http-bind=127.0.0.1:{port}",
            "--http-metrics",
            "--period=100ms",
        )
        wait_for(lambda: published_hash(root / "current") == git_remote.head(), what="app sync")
        wait_for(lambda: len(log) >= 6, what="a few more polls")
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    finally:
        for server in (api, git_server):
            server.shutdown()
            server.server_close()
    assert seen[0][0] == "/app/installations/7/access_tokens"
    assert seen[0][1].startswith("Bearer ey")
    assert len(seen) == 1  # the token is valid until 2099: no refresh per sync
    assert metric(text, "git_sync_refresh_github_app_token_count", 'status="success"') == 1
    assert token not in sync.logs()


# -- more flags ----------------------------------------------------------------------------------


def test_ssh_remote_uses_the_key_file(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    """No sshd here: a stand-in ``ssh`` on PATH records its arguments and runs the remote
    command locally, which is all git asks of ssh."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "ssh-calls"
    fake_ssh = bin_dir / "ssh"
    fake_ssh.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\nfor last; do :; done\nexec sh -c "$last"\n'
    )
    fake_ssh.chmod(0o755)
    key = tmp_path / "deploy-key"
    key.write_text("not really a key\n")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    root = tmp_path / "root"
    sync = start_git_sync(
        *common(f"ssh://git@example.invalid{git_remote.bare}", root, "--one-time"),
        f"--ssh-key-file={key}",
        f"--ssh-known-hosts-file={known_hosts}",
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert sync.wait_exit() == 0, sync.logs()
    assert published_hash(root / "current") == git_remote.head()
    recorded = calls.read_text()
    assert f"-i {key}" in recorded
    assert f"UserKnownHostsFile={known_hosts}" in recorded
    assert "git@example.invalid" in recorded


def test_group_write(git_remote: GitRemote, tmp_path: Path, start_git_sync: Start) -> None:
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, "--one-time", "--group-write"))
    assert sync.wait_exit() == 0, sync.logs()
    assert (root / "current" / "index.html").stat().st_mode & 0o020
    assert (root / ".git" / "config").stat().st_mode & 0o020 or (
        root / ".git"
    ).stat().st_mode & 0o020


def test_failing_hook_is_retried_and_the_latest_hash_wins(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    fail, attempts, done = tmp_path / "fail", tmp_path / "attempts", tmp_path / "done"
    hook = tmp_path / "hook.sh"
    hook.write_text(
        "#!/bin/sh\n"
        f'echo "$GITSYNC_HASH" >> {attempts}\n'
        f"if [ -e {fail} ]; then exit 1; fi\n"
        f'echo "$GITSYNC_HASH" >> {done}\n'
    )
    hook.chmod(0o755)
    fail.touch()
    root = tmp_path / "root"
    start_git_sync(
        *common(git_remote.url, root, "--period=100ms", "--stale-worktree-timeout=1m"),
        f"--exechook-command={hook}",
        "--exechook-backoff=1s",
    )
    first = git_remote.head()
    wait_for(lambda: attempts.exists() and first in attempts.read_text(), what="first attempt")
    second = git_remote.commit({"index.html": "two"})
    wait_for(lambda: published_hash(root / "current") == second, what="second published")
    wait_for(lambda: second in attempts.read_text(), timeout=10, what="retry with the new hash")
    fail.unlink()
    wait_for(lambda: done.exists() and second in done.read_text(), timeout=10, what="success")
    assert first not in done.read_text()
    assert attempts.read_text().splitlines().count(first) >= 1


def test_verbosity_levels(git_remote: GitRemote, tmp_path: Path, start_git_sync: Start) -> None:
    quiet = start_git_sync(*common(git_remote.url, tmp_path / "q", "--one-time"))
    loud = start_git_sync(*common(git_remote.url, tmp_path / "l", "--one-time", "-v", "6"))
    assert quiet.wait_exit() == 0 and loud.wait_exit() == 0
    assert {r["level"] for r in quiet.log_records()} == {0}
    for line in loud.logs().splitlines():  # every line on stderr is one JSON event
        assert isinstance(json.loads(line), dict)
    levels = {r["level"] for r in loud.log_records()}
    assert {0, 1, 5} <= levels
    assert any(r["msg"] == "running command" for r in loud.log_records())


def test_verify_signatures_with_an_openpgp_keyring(
    git_remote: GitRemote,
    tmp_path: Path,
    start_git_sync: Start,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    import subprocess

    from tests.fixtures.requirements import require_program

    gpg = require_program("gpg")
    author_home = tmp_path / "author-gnupg"
    author_home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(author_home))
    # Key generation and signing start a gpg-agent for this home: stop it when the test ends.
    request.addfinalizer(
        lambda: subprocess.run(
            ["gpgconf", "--homedir", str(author_home), "--kill", "gpg-agent"],
            check=False,
            capture_output=True,
        )
    )
    for uid in ("Trusted <trusted@podpatterns.invalid>", "Other <other@podpatterns.invalid>"):
        subprocess.run(
            [
                gpg,
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                uid,
                "ed25519",
                "sign",
                "never",
            ],
            check=True,
            capture_output=True,
        )
    keyring = tmp_path / "trusted.asc"
    keyring.write_bytes(
        subprocess.run(
            [gpg, "--armor", "--export", "trusted@podpatterns.invalid"],
            check=True,
            capture_output=True,
        ).stdout
    )
    signed = git_remote.commit(
        {"index.html": "gpg signed\n"}, sign_with="trusted@podpatterns.invalid"
    )
    root = tmp_path / "root"
    sync = start_git_sync(
        *common(git_remote.url, root, "--period=50ms", "--max-failures=-1"),
        "--verify-signatures",
        f"--allowed-signers-file={keyring}",
    )
    wait_for(lambda: published_hash(root / "current") == signed, what="signed commit published")
    git_remote.commit({"index.html": "other key\n"}, sign_with="other@podpatterns.invalid")
    wait_for(lambda: "no trusted signature" in sync.logs(), what="foreign signature refused")
    assert published_hash(root / "current") == signed
    assert (root / "current" / "index.html").read_text() == "gpg signed\n"


def test_init_max_failures_and_init_period_apply_until_the_first_success(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    missing = start_git_sync(
        *common(f"file://{tmp_path}/missing.git", tmp_path / "a", "--period=1h"),
        "--init-period=20ms",
        "--init-max-failures=3",
        "--max-failures=0",
    )
    assert missing.wait_exit(timeout=20) == 1  # 1h period not used before the first success
    messages = [r["msg"] for r in missing.log_records()]
    assert messages.count("error syncing repo, will retry") == 3
    root = tmp_path / "b"
    start_git_sync(
        *common(git_remote.url, root, "--period=50ms"),
        "--init-period=1h",
        "--max-failures=-1",
    )
    wait_for(lambda: published_hash(root / "current") == git_remote.head(), what="first sync")
    second = git_remote.commit({"index.html": "after init"})
    wait_for(lambda: published_hash(root / "current") == second, what="the regular period")


# -- GitHub app JWT (checked by openssl) ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PEM", "PKCS8"])
def test_github_app_jwt_verifies_with_openssl(tmp_path: Path, fmt: str) -> None:
    """The RS256 signature is checked by an independent implementation (openssl)."""
    import base64
    import subprocess

    from sidecars.git_sync.githubapp import load_private_key, make_jwt
    from tests.fixtures.requirements import require_program

    keygen = require_program("ssh-keygen")
    openssl = require_program("openssl")
    key_file = tmp_path / "key"
    subprocess.run(
        [keygen, "-q", "-t", "rsa", "-b", "2048", "-m", fmt, "-N", "", "-f", str(key_file)],
        check=True,
    )
    token = make_jwt(load_private_key(key_file.read_text()), "Iv1.client", 1_700_000_000)
    header, claims, signature = token.split(".")

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(unb64(claims)) == {
        "iss": "Iv1.client",
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
    }
    assert json.loads(unb64(header))["alg"] == "RS256"
    public = tmp_path / "public.pem"
    subprocess.run(
        [openssl, "pkey", "-in", str(key_file), "-pubout", "-out", str(public)], check=True
    )
    (tmp_path / "sig").write_bytes(unb64(signature))
    (tmp_path / "msg").write_bytes(f"{header}.{claims}".encode())
    verified = subprocess.run(
        [
            openssl,
            "dgst",
            "-sha256",
            "-verify",
            str(public),
            "-signature",
            str(tmp_path / "sig"),
            str(tmp_path / "msg"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.stdout.strip() == "Verified OK"


def test_changing_repos_with_storage_intact(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    from tests.fixtures.git_remote import make_git_remote

    other = make_git_remote(tmp_path / "other")
    other.commit({"index.html": "<h1>other repo</h1>\n"})
    root = tmp_path / "root"
    first = start_git_sync(*common(git_remote.url, root, "--one-time"))
    assert first.wait_exit() == 0
    second = start_git_sync(*common(other.url, root, "--one-time"))
    assert second.wait_exit() == 0, second.logs()
    assert (root / "current" / "index.html").read_text() == "<h1>other repo</h1>\n"
    assert published_hash(root / "current") == other.head()


def test_a_moving_tag_is_followed_both_ways(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    first = git_remote.tag("release", annotated=True)
    root = tmp_path / "root"
    start_git_sync(*common(git_remote.url, root, "--ref=release", "--period=50ms"))
    wait_for(lambda: published_hash(root / "current") == first, what="tag published")
    second_commit = git_remote.commit({"index.html": "two"})
    assert git_remote.tag("release", annotated=True) == second_commit
    wait_for(lambda: published_hash(root / "current") == second_commit, what="tag moved forward")
    assert git_remote.tag("release", ref=first, annotated=True) == first
    wait_for(lambda: published_hash(root / "current") == first, what="tag moved back")
    git_remote.commit({"index.html": "three"})  # the branch moves, the tag does not
    time.sleep(0.5)  # ten polls
    assert published_hash(root / "current") == first


def test_sigterm_stops_a_one_time_run_with_a_failure_code(
    git_remote: GitRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    wrapper, armed, started = _slow_git(tmp_path)
    armed.touch()
    root = tmp_path / "root"
    sync = start_git_sync(*common(git_remote.url, root, "--one-time", f"--git={wrapper}"))
    wait_for(started.exists, what="the sync to stall inside worktree add")
    sync.signal(signal.SIGTERM)
    assert sync.wait_exit(timeout=15) == 128 + signal.SIGTERM
    assert not os.path.lexists(root / "current")
    assert list((root / ".worktrees").iterdir()) == []


def test_exechook_sees_the_environment_but_not_the_password(
    git_http_remote: GitHttpRemote, tmp_path: Path, start_git_sync: Start
) -> None:
    out = tmp_path / "env.out"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nenv > {out}\n")
    hook.chmod(0o755)
    sync = start_git_sync(
        *common(git_http_remote.url, tmp_path / "root", "--one-time"),
        f"--exechook-command={hook}",
        env={
            "GITSYNC_USERNAME": git_http_remote.username,
            "GITSYNC_PASSWORD": git_http_remote.password,
            "APP_SETTING": "passed-through",
        },
    )
    assert sync.wait_exit() == 0, sync.logs()
    seen = out.read_text()
    assert "APP_SETTING=passed-through" in seen
    assert f"GITSYNC_HASH={git_http_remote.remote.head()}" in seen
    assert git_http_remote.password not in seen
