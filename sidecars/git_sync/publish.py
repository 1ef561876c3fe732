"""Publishing a worktree: the ``--link`` symlink, swapped atomically, and stale worktree cleanup.

The link is *relative* (``.worktrees/<sha>``) so the volume works wherever it is mounted, and it
is replaced by creating a temporary link next to it and ``rename(2)``-ing it over the old one: a
reader resolves either the old tree or the new one, never a mix and never nothing. Both steps are
plain syscalls with no ``await`` between them, so a SIGTERM cannot stop us half-way; a temp link
left by a killed process (SIGKILL) is removed at start-up.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Protocol

TMP_LINK = "tmp-link"


class Publisher(Protocol):
    """Makes a complete worktree visible to the consumer in one atomic step."""

    worktrees: Path

    def remove_leftovers(self) -> None: ...

    def current(self) -> Path | None: ...

    def current_hash(self) -> str: ...

    async def publish(self, worktree: Path, deadline: float) -> Path | None: ...

    def remove_stale(self, timeout: float, keep: str) -> int: ...


class SymlinkPublisher:
    def __init__(self, root: Path, link: Path, worktrees: Path) -> None:
        self.root = root
        self.link = link
        self.worktrees = worktrees

    def remove_leftovers(self) -> None:
        (self.link.parent / TMP_LINK).unlink(missing_ok=True)

    def current(self) -> Path | None:
        """The worktree the link points at now (absolute), or None."""
        try:
            target = os.readlink(self.link)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return None
        path = Path(target)
        return path if path.is_absolute() else Path(os.path.normpath(self.link.parent / path))

    def current_hash(self) -> str:
        """The published commit, or "" when the link is missing or not in the v4 layout."""
        current = self.current()
        if current is None or current.parent != self.worktrees:
            return ""
        return current.name

    async def publish(self, worktree: Path, deadline: float) -> Path | None:
        """Point the link at ``worktree``; return the previously published path, if any."""
        return self.swap(worktree)

    def swap(self, worktree: Path) -> Path | None:
        previous = self.current()
        self.link.parent.mkdir(parents=True, exist_ok=True)
        relative = os.path.relpath(worktree, self.link.parent)
        tmp = self.link.parent / TMP_LINK
        tmp.unlink(missing_ok=True)
        os.symlink(relative, tmp)
        try:
            os.rename(tmp, self.link)
        except IsADirectoryError:
            # A real directory where the link goes (a pre-v4 layout): move it aside first.
            shutil.rmtree(self.link, ignore_errors=True)
            os.rename(tmp, self.link)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if previous is not None and previous != worktree and previous.exists():
            # Start the stale-worktree clock of the tree we just replaced.
            now = time.time()
            os.utime(previous, (now, now))
        return previous

    def remove_stale(self, timeout: float, keep: str) -> int:
        return remove_stale_worktrees(self.worktrees, timeout, keep)


def remove_stale_worktrees(worktrees: Path, timeout: float, keep: str) -> int:
    """Remove worktrees other than ``keep`` not used for ``timeout`` seconds; return count."""
    if not worktrees.is_dir():
        return 0
    removed = 0
    now = time.time()
    for entry in worktrees.iterdir():
        if entry.name == keep:
            continue
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if age > timeout:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
