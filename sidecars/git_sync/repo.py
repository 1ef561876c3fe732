"""What git does: keep ``<root>/.git`` usable, learn the remote hash of the ref, fetch it, and
build the worktree ``<root>/.worktrees/<sha>`` for it.

An idle poll is one ``git ls-remote`` (compare the remote hash to the published one); a fetch and a
new worktree only happen when the hash moved. Upstream runs about seven git processes per poll.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sidecars.git_sync.config import Submodules
from sidecars.git_sync.gitexec import Git, GitError
from sidecars.git_sync.jsonlog import Logger

_SHA = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
# git's own DWIM order for a short ref name (refs.c: ref_rev_parse_rules).
_RULES = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}")


class SyncError(Exception):
    """A sync failed for a reason worth one readable line (the loop counts and retries)."""


def is_sha(ref: str) -> bool:
    return _SHA.match(ref) is not None


@dataclass(frozen=True)
class RepoSettings:
    root: Path
    repo: str
    ref: str
    depth: int
    filter: str
    submodules: Submodules
    sparse_checkout_file: Path | None


class Repo:
    def __init__(self, settings: RepoSettings, git: Git, log: Logger) -> None:
        self.s = settings
        self.git = git
        self.log = log
        self.dot_git = settings.root / ".git"
        self.worktrees = settings.root / ".worktrees"
        self._checked = False

    def worktree_for(self, sha: str) -> Path:
        return self.worktrees / sha

    # -- the local repository -------------------------------------------------------------

    async def ensure_initialized(self, deadline: float) -> None:
        """Make ``<root>/.git`` a usable repository; wipe and re-init a corrupt root."""
        if self._checked and (self.dot_git / "HEAD").is_file():
            return
        root = self.s.root
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()) and not await self._sane(deadline):
            self.log.info(0, "repo directory was empty or failed checks", path=str(root))
            wipe_contents(root)
        if not (self.dot_git / "HEAD").is_file():
            self.log.info(0, "initializing repo directory", path=str(root))
            await self.git.run("init", "-q", "-b", "git-sync", cwd=root, deadline=deadline)
            await self.git.run("remote", "add", "origin", self.s.repo, cwd=root, deadline=deadline)
        else:
            url = await self._origin_url(deadline)
            if url != self.s.repo:
                verb = "add" if url is None else "set-url"
                await self.git.run(
                    "remote", verb, "origin", self.s.repo, cwd=root, deadline=deadline
                )
        self._checked = True

    async def _origin_url(self, deadline: float) -> str | None:
        try:
            url = await self.git.run(
                "remote", "get-url", "origin", cwd=self.s.root, deadline=deadline
            )
        except GitError:
            return None
        return url.strip()

    async def _sane(self, deadline: float) -> bool:
        if not (self.dot_git / "HEAD").is_file():
            return False
        try:
            top = await self.git.run(
                "rev-parse", "--show-toplevel", cwd=self.s.root, deadline=deadline
            )
            if Path(top.strip()).resolve() != self.s.root.resolve():
                return False
            await self.git.run(
                "fsck", "--no-progress", "--connectivity-only", cwd=self.s.root, deadline=deadline
            )
        except GitError as err:
            if err.returncode is None:
                # Out of time is not proof of corruption: fail this sync, never wipe for it.
                raise
            self.log.error(err, "repo sanity check failed", path=str(self.s.root))
            return False
        return not (self.dot_git / "shallow.lock").exists()

    def forget_checks(self) -> None:
        """After a failure, re-verify the repository on the next sync."""
        self._checked = False

    # -- the remote ----------------------------------------------------------------------

    async def remote_hash(self, deadline: float) -> str:
        """The commit the ref names on the remote now, via one ``git ls-remote``."""
        ref = self.s.ref
        if is_sha(ref):
            return ref
        out = await self.git.run(
            "ls-remote", "--", self.s.repo, ref, ref + "^{}", cwd=self.s.root, deadline=deadline
        )
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        for rule in ("{}",) if ref == "HEAD" else _RULES:
            name = rule.format(ref)
            if name in refs:
                return refs.get(name + "^{}", refs[name])  # peel annotated tags
        raise SyncError(f"ref {ref!r} not found in the remote repository")

    async def fetch(self, deadline: float) -> str:
        """Fetch the ref; return the commit it names (annotated tags peeled)."""
        ref = self.s.ref
        args = ["fetch", self.s.repo, ref, "--no-progress", "--prune", "--no-auto-gc", "--no-tags"]
        if self.s.depth > 0:
            args += ["--depth", str(self.s.depth)]
        elif (self.dot_git / "shallow").exists():
            args.append("--unshallow")
        if self.s.filter:
            args.append(f"--filter={self.s.filter}")
        try:
            await self.git.run(*args, cwd=self.s.root, deadline=deadline)
        except GitError as err:
            if "couldn't find remote ref" in err.stderr or "not our ref" in err.stderr:
                raise SyncError(f"ref {ref!r} not found in the remote repository") from err
            raise
        sha = await self.git.run(
            "rev-parse", "--verify", "FETCH_HEAD^{commit}", cwd=self.s.root, deadline=deadline
        )
        return sha.strip()

    async def anchor(self, sha: str, deadline: float) -> None:
        """Point the repository's HEAD at the synced commit: the next fetch negotiates from it
        (so only new objects travel). Done after publishing, off the latency path."""
        await self.git.run("update-ref", "HEAD", sha, cwd=self.s.root, deadline=deadline)

    # -- worktrees -----------------------------------------------------------------------

    async def build_worktree(self, sha: str, deadline: float) -> Path:
        """Create ``.worktrees/<sha>`` with the files of ``sha``. On any failure or cancellation
        the half-built directory is removed, so only complete worktrees ever exist."""
        path = self.worktree_for(sha)
        await self.remove_worktree(path, deadline)
        self.worktrees.mkdir(parents=True, exist_ok=True)
        try:
            await self._populate(path, sha, deadline)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(self.dot_git / "worktrees" / sha, ignore_errors=True)
            raise
        return path

    async def _populate(self, path: Path, sha: str, deadline: float) -> None:
        sparse = self.s.sparse_checkout_file
        args = ["worktree", "add", "-q", "--force", "--detach", str(path), sha]
        if sparse is not None:
            args.append("--no-checkout")
        self.log.info(1, "adding worktree", path=str(path), hash=sha)
        await self.git.run(*args, cwd=self.s.root, deadline=deadline)
        # A relative gitdir, so the volume can be mounted at another path in other containers.
        relative = os.path.relpath(self.dot_git / "worktrees" / sha, path)
        (path / ".git").write_text(f"gitdir: {relative}\n")
        if sparse is not None:
            info = self.dot_git / "worktrees" / sha / "info"
            info.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sparse, info / "sparse-checkout")
            await self.git.run("config", "core.sparseCheckout", "true", cwd=path, deadline=deadline)
            await self.git.run("reset", "-q", "--hard", sha, "--", cwd=path, deadline=deadline)
        if self.s.submodules is not Submodules.OFF and (path / ".gitmodules").exists():
            sub = ["submodule", "update", "--init"]
            if self.s.submodules is Submodules.RECURSIVE:
                sub.append("--recursive")
            if self.s.depth:
                sub += ["--depth", str(self.s.depth)]
            self.log.info(1, "updating submodules")
            await self.git.run(*sub, cwd=path, deadline=deadline)

    async def remove_worktree(self, path: Path, deadline: float) -> None:
        if not path.exists():
            return
        self.log.info(1, "removing worktree", path=str(path))
        shutil.rmtree(path, ignore_errors=True)
        await self.git.run("worktree", "prune", cwd=self.s.root, deadline=deadline)

    def worktree_looks_complete(self, path: Path, sha: str) -> bool:
        """A cheap (no git process) check that a published worktree is still there."""
        git_file = path / ".git"
        meta = self.dot_git / "worktrees" / sha / "HEAD"
        try:
            return git_file.is_file() and meta.read_text().strip() == sha
        except OSError:
            return False


def wipe_contents(directory: Path) -> None:
    """Remove everything inside ``directory`` but not the directory (often a volume mount)."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
