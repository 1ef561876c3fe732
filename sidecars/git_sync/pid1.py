"""Acting as init when started as PID 1 without tini (as upstream does): re-run ourselves as a
child, forward termination signals to it, reap every orphan that gets re-parented to us (git's
credential-cache daemon, killed hooks' children), and exit with the child's status."""

from __future__ import annotations

import os
import signal
import subprocess

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
CHILD_MARKER = "GITSYNC_PID1_CHILD"


def needed() -> bool:
    return os.getpid() == 1 and os.environ.get(CHILD_MARKER) != "1"


def run_as_init(argv: list[str]) -> int:
    child = subprocess.Popen(argv, env={**os.environ, CHILD_MARKER: "1"})

    def forward(signum: int, _frame: object) -> None:
        if child.returncode is None:
            child.send_signal(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            code = child.returncode
            return code if code >= 0 else 128 - code
