"""When to sync: every ``--period`` (``--init-period`` until the first success), early on the
``--sync-on-signal`` signal or a push trigger; count failures against ``--max-failures``
(``--init-max-failures`` before the first success); ``--one-time``; hooks and readiness after
each success."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sidecars.git_sync import metrics
from sidecars.git_sync.gitexec import GitError
from sidecars.git_sync.hooks import HookRunner
from sidecars.git_sync.http import HttpState
from sidecars.git_sync.jsonlog import Logger
from sidecars.git_sync.repo import is_sha
from sidecars.git_sync.sync import Syncer

# A failed sync is retried after the period, but never sooner than this (a tight loop against a
# remote that is down helps nobody).
MIN_RETRY_SECONDS = 0.1


@dataclass(frozen=True)
class Schedule:
    period: float
    init_period: float
    sync_timeout: float
    max_failures: int
    init_max_failures: int
    one_time: bool
    ref: str
    touch_file: Path | None


class Loop:
    def __init__(
        self,
        schedule: Schedule,
        syncer: Syncer,
        hooks: list[HookRunner],
        state: HttpState,
        log: Logger,
    ) -> None:
        self.schedule = schedule
        self.syncer = syncer
        self.hooks = hooks
        self.state = state
        self.log = log
        self._wake = asyncio.Event()
        self._pushed = False

    def wake(self) -> None:
        """Sync now (signal); several wakes during one sync coalesce."""
        self._wake.set()

    def pushed(self) -> None:
        """A push trigger: sync now, and skip the remote probe (the forge told us it moved)."""
        self._pushed = True
        self._wake.set()

    async def run(self) -> int:
        """Run until --one-time completes or failures exceed the budget; return the exit code."""
        failures = 0
        successes = 0
        s = self.schedule
        while True:
            self._wake.clear()
            probe, self._pushed = not self._pushed, False
            started = time.monotonic()
            try:
                result = await self.syncer.sync(started + s.sync_timeout, probe=probe)
            except Exception as err:  # any failed sync is counted and retried, never a crash
                failures += 1
                metrics.observe_sync(metrics.ERROR, time.monotonic() - started)
                self.syncer.repo.forget_checks()
                budget = s.max_failures if successes else s.init_max_failures
                if budget >= 0 and failures > budget:
                    self.log.error(err, "too many failures, aborting", failCount=failures)
                    return 1
                self.log.error(err, "error syncing repo, will retry", failCount=failures)
            else:
                self.state.ready = True
                if result.changed or successes == 0:
                    self._touch()
                    for hook in self.hooks:
                        hook.send(result.sha)
                    metrics.observe_sync(metrics.SUCCESS, time.monotonic() - started)
                else:
                    metrics.observe_sync(metrics.NOOP, time.monotonic() - started)
                successes += 1
                try:
                    await self.syncer.cleanup(time.monotonic() + s.sync_timeout)
                except (GitError, OSError) as err:
                    self.log.error(err, "git cleanup failed")
                if s.one_time:
                    return await self._finish_one_time()
                if failures:
                    self.log.info(4, "resetting failure count", failCount=failures)
                    failures = 0
                self.log.delete_error_file()
                if is_sha(s.ref) and result.sha == s.ref:
                    self.log.info(0, "ref appears to be a git hash, no further sync needed")
                    await asyncio.Event().wait()  # until SIGTERM cancels us
            period = s.period if successes else s.init_period
            if failures:
                period = max(period, MIN_RETRY_SECONDS)
            self.log.info(3, "next sync", waitTime=period, syncCount=successes)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)

    async def _finish_one_time(self) -> int:
        code = 0
        for hook in self.hooks:
            if not await hook.first_result:
                code = 1
        self.log.delete_error_file()
        self.log.info(0, "exiting after one sync", status=code)
        return code

    def _touch(self) -> None:
        path = self.schedule.touch_file
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path)
        except OSError as err:
            self.log.error(err, "failed to touch touch-file", path=str(path))
