"""``--publish-mode=exchange`` (beyond upstream, its issue #799): the published path is a real
directory, for consumers that cannot or will not follow symlinks.

How: the commit's files are written into a staging directory next to the published path
(``git checkout-index`` from the commit's worktree, so ``.git`` is not part of it), then the two
directories trade places in one ``renameat2(RENAME_EXCHANGE)`` call, and the old content (now at
the staging path) is deleted.

Guarantees: a reader that opens the published directory (a dir fd, a ``cd``, a path lookup) gets
either the complete old tree or the complete new tree — never a mix, never ENOENT for the
directory itself. A reader that keeps an fd on the *old* directory may see its files vanish when it
is deleted, exactly as with a stale worktree in symlink mode. Needs Linux ≥ 3.15 and a file system
with RENAME_EXCHANGE (ext4, xfs, btrfs, tmpfs, overlayfs upper); staging and published path are on
the same file system by construction. The published commit is recorded in
``<root>/.git/gitsync-published-<name>``; ``<root>/.worktrees/<sha>`` still holds the worktree
(hooks run there), and ``--link`` names the directory instead of a symlink.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from pathlib import Path

from sidecars.git_sync.gitexec import Git
from sidecars.git_sync.publish import remove_stale_worktrees

AT_FDCWD = -100
RENAME_EXCHANGE = 2
STAGING_PREFIX = ".gitsync-staging-"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def rename_exchange(a: Path, b: Path) -> None:
    """Atomically swap two paths (both must exist)."""
    result = _libc.renameat2(
        AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), ctypes.c_uint(RENAME_EXCHANGE)
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"renameat2(RENAME_EXCHANGE) {a} <-> {b}: {os.strerror(errno)}")


class ExchangePublisher:
    def __init__(self, root: Path, link: Path, worktrees: Path, git: Git) -> None:
        self.root = root
        self.link = link
        self.worktrees = worktrees
        self.git = git
        self.marker = root / ".git" / f"gitsync-published-{link.name}"

    def _staging(self, sha: str) -> Path:
        return self.link.parent / f"{STAGING_PREFIX}{self.link.name}-{sha}"

    def remove_leftovers(self) -> None:
        parent = self.link.parent
        if not parent.is_dir():
            return
        for entry in parent.iterdir():
            if entry.name.startswith(f"{STAGING_PREFIX}{self.link.name}-"):
                shutil.rmtree(entry, ignore_errors=True)

    def current_hash(self) -> str:
        if not self.link.is_dir() or self.link.is_symlink():
            return ""
        try:
            return self.marker.read_text().strip()
        except OSError:
            return ""

    def current(self) -> Path | None:
        sha = self.current_hash()
        return self.worktrees / sha if sha else None

    async def publish(self, worktree: Path, deadline: float) -> Path | None:
        previous = self.current()
        sha = worktree.name
        staging = self._staging(sha)
        shutil.rmtree(staging, ignore_errors=True)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self.git.run(
                "checkout-index",
                "-a",
                "-f",
                f"--prefix={staging}/",
                cwd=worktree,
                deadline=deadline,
            )
            staging.mkdir(exist_ok=True)  # an empty commit has no files to write
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.chmod(staging, 0o755)
        # No await from here on: the swap and the bookkeeping cannot be interrupted by SIGTERM.
        if self.link.is_symlink() or (self.link.exists() and not self.link.is_dir()):
            self.link.unlink()  # switching from symlink mode
        if self.link.is_dir():
            rename_exchange(staging, self.link)
            shutil.rmtree(staging, ignore_errors=True)  # the old content now lives here
        else:
            os.rename(staging, self.link)
        tmp_marker = self.marker.with_name(self.marker.name + ".tmp")
        tmp_marker.write_text(sha + "\n")
        os.replace(tmp_marker, self.marker)
        if previous is not None and previous.exists() and previous != worktree:
            os.utime(previous)
        return previous

    def remove_stale(self, timeout: float, keep: str) -> int:
        return remove_stale_worktrees(self.worktrees, timeout, keep)
