"""The git remote fixtures behave like real remotes: clone over file:// and over HTTP+auth."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.git_remote import GitHttpRemote, GitRemote, git


def test_bare_remote_can_be_cloned_and_updated(git_remote: GitRemote, tmp_path: Path) -> None:
    first = git_remote.head()
    clone = tmp_path / "clone"
    git("clone", "-q", git_remote.url, str(clone))
    assert (clone / "index.html").read_text() == "<h1>first</h1>\n"
    second = git_remote.commit({"index.html": "<h1>second</h1>\n"})
    assert second != first
    git("pull", "-q", cwd=clone)
    assert git("rev-parse", "HEAD", cwd=clone) == second


def test_http_remote_requires_basic_auth(git_http_remote: GitHttpRemote, tmp_path: Path) -> None:
    denied = subprocess.run(
        ["git", "-c", "credential.helper=", "ls-remote", git_http_remote.url],
        capture_output=True,
        text=True,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert denied.returncode != 0
    authed = git_http_remote.url.replace(
        "http://", f"http://{git_http_remote.username}:{git_http_remote.password}@"
    )
    clone = tmp_path / "clone"
    git("clone", "-q", authed, str(clone))
    assert git("rev-parse", "HEAD", cwd=clone) == git_http_remote.remote.head()
