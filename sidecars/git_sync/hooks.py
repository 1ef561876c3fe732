"""Exechook and webhook: told about each new hash, run asynchronously, retried with a backoff
until they succeed, and only ever for the latest hash (a hash superseded while a hook was
failing is skipped, as upstream)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from sidecars.git_sync import metrics
from sidecars.git_sync.jsonlog import Logger


class HookError(Exception):
    pass


class Exechook:
    name = "exechook"

    def __init__(
        self,
        command: str,
        timeout: float,
        worktree_for: Callable[[str], Path],
        env: dict[str, str],
        log: Logger,
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.worktree_for = worktree_for
        self.env = env
        self.log = log

    async def __call__(self, sha: str) -> None:
        cwd = self.worktree_for(sha)
        env = {**self.env, "GITSYNC_HASH": sha}
        self.log.info(0, "running exechook", command=self.command, hash=sha)
        process = await asyncio.create_subprocess_exec(
            self.command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout)
        except BaseException:
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            raise HookError(
                f"exechook exited {process.returncode}: {err.decode('utf-8', 'replace').strip()}"
            )
        self.log.info(1, "exechook output", stdout=out.decode("utf-8", "replace"))


class Webhook:
    name = "webhook"

    def __init__(self, url: str, method: str, success: int, timeout: float, log: Logger) -> None:
        self.url = url
        self.method = method
        self.success = success
        self.timeout = timeout
        self.log = log

    async def __call__(self, sha: str) -> None:
        self.log.info(0, "sending webhook", url=self.url, hash=sha)
        status = await asyncio.to_thread(self._send, sha)
        if self.success and status != self.success:
            raise HookError(f"webhook returned {status}, want {self.success}")

    def _send(self, sha: str) -> int:
        body = None if self.method.upper() in ("GET", "HEAD") else b""
        # urllib takes user info in a URL for part of the host name (and hands it, password
        # included, to the resolver): send it as basic auth, as upstream git-sync does.
        url, authorization = _split_userinfo(self.url)
        request = urllib.request.Request(url, method=self.method, data=body)
        if authorization:
            request.add_header("Authorization", authorization)
        request.add_header("Gitsync-Hash", sha)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except (urllib.error.URLError, OSError) as err:
            raise HookError(f"webhook request failed: {err}") from None


def _split_userinfo(url: str) -> tuple[str, str]:
    """``http://user:pw@host/x`` → (``http://host/x``, ``Basic <base64 user:pw>``)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, ""
    userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    plain = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return plain, "Basic " + base64.b64encode(userinfo.encode()).decode()


class HookRunner:
    """Runs one hook for the latest hash it was sent, retrying until it succeeds."""

    def __init__(
        self, hook: Callable[[str], Awaitable[None]], name: str, backoff: float, log: Logger
    ) -> None:
        self.hook = hook
        self.name = name
        self.backoff = backoff
        self.log = log
        self._latest = ""
        self._wake = asyncio.Event()
        # For --one-time: the outcome of the first run.
        self.first_result: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def send(self, sha: str) -> None:
        self._latest = sha
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            sha = self._latest
            while True:
                started = time.monotonic()
                try:
                    await self.hook(sha)
                except Exception as err:  # a hook failure of any kind is retried, never fatal
                    metrics.hook_run_count.labels(self.name, metrics.ERROR).inc()
                    self.log.error(err, "hook failed", hash=sha, attempt_seconds=_since(started))
                    if not self.first_result.done():
                        self.first_result.set_result(False)
                    await asyncio.sleep(self.backoff)
                    if self._wake.is_set():  # a newer hash arrived: run that one instead
                        self._wake.clear()
                        sha = self._latest
                    continue
                metrics.hook_run_count.labels(self.name, metrics.SUCCESS).inc()
                self.log.info(1, "hook succeeded", hash=sha)
                if not self.first_result.done():
                    self.first_result.set_result(True)
                break


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def hook_environment() -> dict[str, str]:
    """The hook sees git-sync's environment minus secrets."""
    return {k: v for k, v in os.environ.items() if "PASSWORD" not in k and "SECRET" not in k}
