"""Credentials reach git only through ``git credential approve`` into a credential cache that
lives in our private config: never on a command line (visible in /proc), never in a log.

Password files are re-read on every sync (Kubernetes updates mounted Secrets in place), and the
cache is only re-filled when a value changed, so an idle poll costs no extra git process.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sidecars.git_sync import metrics
from sidecars.git_sync.config import Credential
from sidecars.git_sync.gitexec import Git, GitError
from sidecars.git_sync.githubapp import GitHubApp, GitHubAppError
from sidecars.git_sync.jsonlog import Logger

# The cache daemon forgets after this; we re-approve well before.
CACHE_SECONDS = 3600
REFRESH_SECONDS = 1800


class CredentialError(Exception):
    pass


@dataclass
class _Approved:
    password: str
    at: float


class CredentialStore:
    def __init__(
        self,
        credentials: tuple[Credential, ...],
        askpass_url: str,
        repo_url: str,
        git: Git,
        log: Logger,
        github_app: GitHubApp | None = None,
    ) -> None:
        self.credentials = credentials
        self.github_app = github_app
        self.repo_url = repo_url
        self.askpass_url = askpass_url
        self.git = git
        self.log = log
        self._approved: dict[tuple[str, str], _Approved] = {}
        for cred in credentials:
            log.redact.add(cred.password)

    async def refresh(self, deadline: float) -> None:
        for cred in self.credentials:
            password = cred.password
            if cred.password_file:
                try:
                    password = Path(cred.password_file).read_text()
                except OSError as err:
                    raise CredentialError(f"can't read password file: {err}") from None
                self.log.redact.add(password)
            await self._approve(cred.url, cred.username, password, deadline)
        if self.askpass_url:
            try:
                username, password = await asyncio.to_thread(self._ask)
            except (OSError, ValueError) as err:
                metrics.askpass_calls.inc(metrics.ERROR)
                raise CredentialError(f"askpass URL failed: {err}") from None
            metrics.askpass_calls.inc(metrics.SUCCESS)
            self.log.redact.add(password)
            # As upstream: what the askpass URL returns is the credential for --repo.
            await self._approve(self.repo_url, username, password, deadline)
        app = self.github_app
        if app is not None and app.needs_refresh():
            try:
                token = await asyncio.to_thread(app.refresh, 10.0)
            except GitHubAppError as err:
                metrics.github_app_refreshes.inc(metrics.ERROR)
                raise CredentialError(str(err)) from None
            metrics.github_app_refreshes.inc(metrics.SUCCESS)
            self.log.redact.add(token.token)
            # Installation tokens authenticate with any user name; upstream uses "-".
            await self._approve(self.repo_url, "-", token.token, deadline)

    def _ask(self) -> tuple[str, str]:
        with urllib.request.urlopen(self.askpass_url, timeout=10) as response:
            body = response.read(65536).decode("utf-8", "replace")
        fields = dict(line.partition("=")[::2] for line in body.splitlines() if "=" in line)
        if "username" not in fields or "password" not in fields:
            raise ValueError("the reply has no username= and password= lines")
        return fields["username"], fields["password"]

    async def _approve(self, url: str, username: str, password: str, deadline: float) -> None:
        key = (url, username)
        known = self._approved.get(key)
        if known and known.password == password and time.monotonic() - known.at < REFRESH_SECONDS:
            return
        lines = [f"username={username}", f"password={password}"]
        if url:
            lines.insert(0, f"url={url}")
        payload = ("\n".join(lines) + "\n\n").encode()
        try:
            await self.git.run("credential", "approve", stdin=payload, deadline=deadline)
        except GitError as err:
            raise CredentialError(f"can't store credentials: {err.stderr}") from None
        self._approved[key] = _Approved(password, time.monotonic())
        self.log.info(2, "stored credentials", url=url, username=username)
