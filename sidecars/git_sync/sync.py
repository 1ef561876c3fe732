"""One sync pass: credentials → repository → remote hash → (fetch → verify → worktree → publish)
→ cleanup. Knows the order of the stages, not how each works."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sidecars.git_sync import metrics
from sidecars.git_sync.config import GitGC
from sidecars.git_sync.credentials import CredentialStore
from sidecars.git_sync.gitexec import GitError
from sidecars.git_sync.jsonlog import Logger
from sidecars.git_sync.publish import Publisher
from sidecars.git_sync.repo import Repo, SyncError


@dataclass(frozen=True)
class SyncResult:
    changed: bool
    sha: str


@dataclass(frozen=True)
class Verification:
    """``--verify-signatures``: a commit must carry a signature git accepts, from an SSH
    allowed-signers file, or from an OpenPGP keyring imported into a private GNUPGHOME."""

    allowed_signers_file: Path | None = None
    gnupg_home: Path | None = None

    def git_args(self) -> list[str]:
        if self.allowed_signers_file is not None:
            return [
                "-c",
                "gpg.format=ssh",
                "-c",
                f"gpg.ssh.allowedSignersFile={self.allowed_signers_file}",
            ]
        return ["-c", "gpg.format=openpgp"]

    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.gnupg_home)} if self.gnupg_home is not None else {}


class Syncer:
    def __init__(
        self,
        repo: Repo,
        publisher: Publisher,
        credentials: CredentialStore,
        log: Logger,
        stale_timeout: float,
        gc: GitGC,
        verification: Verification | None,
    ) -> None:
        self.repo = repo
        self.publisher = publisher
        self.credentials = credentials
        self.log = log
        self.stale_timeout = stale_timeout
        self.gc = gc
        self.verification = verification
        self.fetched_once = False

    async def sync(self, deadline: float, probe: bool = True) -> SyncResult:
        """``probe=False`` (a push trigger said the ref moved): skip the ls-remote and fetch."""
        await self.credentials.refresh(deadline)
        await self.repo.ensure_initialized(deadline)
        current_path = self.publisher.current()
        current = self.publisher.current_hash()
        intact = bool(current) and self.repo.worktree_looks_complete(
            self.repo.worktree_for(current), current
        )
        # The cheap path: one ls-remote. The first pass always fetches, so a changed --depth
        # or a damaged object store is repaired at start-up, as upstream does.
        if intact and self.fetched_once and probe:
            remote = await self.repo.remote_hash(deadline)
            if remote == current:
                self.log.info(2, "update not required", ref=self.repo.s.ref, remote=remote)
                return SyncResult(False, current)

        metrics.fetch_count.inc()
        sha = await self.repo.fetch(deadline)
        self.fetched_once = True
        if sha == current and intact:
            return SyncResult(False, sha)
        self.log.info(0, "update required", ref=self.repo.s.ref, local=current, remote=sha)
        if self.verification is not None:
            await self._verify(sha, deadline)
        worktree = await self.repo.build_worktree(sha, deadline)
        await self.publisher.publish(worktree, deadline)
        await self.repo.anchor(sha, deadline)
        self.log.info(0, "updated successfully", ref=self.repo.s.ref, remote=sha)
        if (
            current_path is not None
            and current_path.parent != self.repo.worktrees
            and current_path.is_relative_to(self.repo.s.root)
            and current_path != self.repo.s.root
        ):
            # A pre-v4 layout (worktrees directly under the root): migrate by dropping it.
            shutil.rmtree(current_path, ignore_errors=True)
        return SyncResult(True, sha)

    async def _verify(self, sha: str, deadline: float) -> None:
        assert self.verification is not None
        try:
            await self.repo.git.run(
                *self.verification.git_args(),
                "verify-commit",
                sha,
                cwd=self.repo.s.root,
                deadline=deadline,
                extra_env=self.verification.env(),
            )
        except GitError as err:
            metrics.verify_failures.inc()
            raise SyncError(f"commit {sha} has no trusted signature: {err.stderr}") from None

    async def cleanup(self, deadline: float) -> None:
        removed = self.publisher.remove_stale(self.stale_timeout, self.publisher.current_hash())
        if not removed:
            return
        root = self.repo.s.root
        git = self.repo.git
        await git.run("worktree", "prune", cwd=root, deadline=deadline)
        await git.run(
            "reflog", "expire", "--expire-unreachable=all", "--all", cwd=root, deadline=deadline
        )
        if self.gc is not GitGC.OFF:
            extra = {GitGC.AUTO: ["--auto"], GitGC.AGGRESSIVE: ["--aggressive"]}.get(self.gc, [])
            await git.run("gc", "--quiet", *extra, cwd=root, deadline=deadline)
