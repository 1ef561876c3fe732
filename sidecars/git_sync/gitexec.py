"""Running the git executable: a private environment and a deadline on every call.

The private ``GIT_CONFIG_GLOBAL`` keeps the user's (or the image's) configuration out, and holds
the credential helper settings; ``GIT_TERMINAL_PROMPT=0`` makes a missing credential an error
instead of a hang. A cancelled call (SIGTERM, sync timeout) kills the child before returning.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sidecars.git_sync.jsonlog import Logger


class GitError(Exception):
    def __init__(self, args: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(args)
        self.returncode = returncode
        self.stderr = stderr.strip()
        status = "timed out" if returncode is None else f"exit {returncode}"
        super().__init__(f"git {' '.join(self.argv)}: {status}: {self.stderr}")


class Git:
    def __init__(self, binary: str, global_config: Path, log: Logger) -> None:
        self.binary = binary
        self.global_config = global_config
        self.log = log
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITSYNC_", "SSH_"))
        }
        env.update(
            {
                "GIT_CONFIG_GLOBAL": str(self.global_config),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_TERMINAL_PROMPT": "0",
                "LC_ALL": "C",
            }
        )
        return env

    async def run(
        self,
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        deadline: float,
        extra_env: Mapping[str, str] | None = None,
    ) -> str:
        """Run git; return stdout. ``deadline`` is a ``time.monotonic()`` instant."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GitError(args, None, "sync deadline passed before the call started")
        env = {**self.env, **extra_env} if extra_env else self.env
        self.log.info(5, "running command", cwd=str(cwd or ""), cmd=f"git {' '.join(args)}")
        process = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), remaining)
        except BaseException as problem:  # timeout or cancellation: never leave git running
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            if isinstance(problem, TimeoutError):
                raise GitError(args, None, f"timed out after {remaining:.1f}s") from None
            raise
        if process.returncode != 0:
            raise GitError(args, process.returncode, err.decode("utf-8", "replace"))
        return out.decode("utf-8", "replace")
