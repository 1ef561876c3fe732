"""git-sync benchmark: four figures, each against plain git measured in the same run.

  (a) CPU (user+sys, children included) of one idle poll / one bare ``git fetch``   target ≤ 1.5x
  (b) push-to-published latency, --period=1s (target median ≤ period/2 + 150 ms) and with the
      push trigger (target ≤ 300 ms)
  (c) first sync of a 20 000-file repository / ``git clone --depth 1``            target ≤ 1.3x
  (d) peak RSS of the git-sync Python process                                     target ≤ 40 MB

Usage: python bench/git_sync.py [--quick]. Everything runs on loopback in a temp directory and
is bounded in time (about a minute; --quick for a smoke run).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

GIT_SYNC = str(Path(sys.executable).with_name("git-sync"))
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITSYNC_"))},
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@podpatterns.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@podpatterns.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
SECRET = b"bench-secret"


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_remote(base: Path, files: int) -> tuple[Path, Path]:
    bare, work = base / "remote.git", base / "author"
    git("init", "-q", "--bare", "--initial-branch=main", str(bare))
    git("init", "-q", "--initial-branch=main", str(work))
    git("remote", "add", "origin", str(bare), cwd=work)
    for i in range(files):
        sub = work / f"d{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05d}.txt").write_text(f"file {i}\n")
    (work / "index.html").write_text("0\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "init", cwd=work)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    return bare, work


def push(work: Path, text: str) -> str:
    (work / "index.html").write_text(text)
    git("commit", "-q", "--allow-empty", "-am", text.strip(), cwd=work)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def published(link: Path) -> str:
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return ""


def wait(condition: object, timeout: float, step: float = 0.001) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def proc_cpu(pid: int) -> float:
    """utime+stime of the process and its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int, sample: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
    return 0.0


class Running:
    def __init__(self, *args: str, log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([GIT_SYNC, *args], stderr=self.log, env=ENV)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def idle_poll_cpu(base: Path, polls: int) -> tuple[float, float]:
    bare, _ = make_remote(base / "a", files=10)
    url = f"file://{bare}"
    # Reference: bare `git fetch` of the same ref in an up-to-date clone.
    clone = base / "a" / "clone"
    git("clone", "-q", "--depth", "1", url, str(clone))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(polls):
        subprocess.run(["git", "fetch", "-q", url, "main"], cwd=clone, env=ENV, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reference = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / polls

    port = free_port()
    root = base / "a" / "root"
    sync = Running(
        f"--repo={url}",
        f"--root={root}",
        "--link=current",
        "--period=20ms",
        f"--http-bind=127.0.0.1:{port}",
        "--http-metrics",
        log=base / "a.log",
    )
    try:
        wait(lambda: published(root / "current"), 20)
        noop = 'git_sync_count_total{status="noop"}'
        wait(lambda: scrape(port, noop) >= 3, 20, step=0.2)
        # Only two scrapes in the measured window: scraping costs the scraped process CPU too.
        n0 = scrape(port, noop)
        cpu0 = proc_cpu(sync.process.pid)
        time.sleep(polls * 0.03)
        cpu1 = proc_cpu(sync.process.pid)
        n1 = scrape(port, noop)
    finally:
        sync.stop()
    return (cpu1 - cpu0) / (n1 - n0), reference


def latency(base: Path, rounds: int, trigger: bool) -> tuple[list[float], float]:
    bare, work = make_remote(base / ("t" if trigger else "p"), files=10)
    root = base / ("t" if trigger else "p") / "root"
    port = free_port()
    secret_file = base / "secret"
    secret_file.write_bytes(SECRET)
    args = [
        f"--repo=file://{bare}",
        f"--root={root}",
        "--link=current",
        "--git-gc=off",
        f"--http-bind=127.0.0.1:{port}",
    ]
    args += (
        [f"--sync-trigger-secret-file={secret_file}", "--period=1h"] if trigger else ["--period=1s"]
    )
    sync = Running(*args, log=base / f"latency-{trigger}.log")
    samples: list[float] = []
    try:
        wait(lambda: published(root / "current"), 20)
        for i in range(rounds):
            if not trigger:
                time.sleep(random.uniform(0, 1.0))  # pushes land at a random poll phase
            sha = push(work, f"v{i}\n")
            start = time.monotonic()
            if trigger:
                body = b'{"ref":"refs/heads/main"}'
                signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/sync",
                    data=body,
                    method="POST",
                    headers={"X-Hub-Signature-256": signature},
                )
                urllib.request.urlopen(request, timeout=5).close()
            if wait(lambda sha=sha: published(root / "current") == sha, 10):  # type: ignore[misc]
                samples.append(time.monotonic() - start)
        rss = peak_rss_mb(sync.process.pid)
    finally:
        sync.stop()
    return samples, rss


def first_sync(base: Path, files: int) -> tuple[float, float, float]:
    bare, _ = make_remote(base / "c", files=files)
    url = f"file://{bare}"
    clone_times, sync_times, rss = [], [], 0.0
    for attempt in range(5):  # interleaved, best of five: disk contention comes in bursts
        start = time.monotonic()
        git("clone", "-q", "--depth", "1", url, str(base / "c" / f"clone{attempt}"))
        clone_times.append(time.monotonic() - start)
        root = base / "c" / f"root{attempt}"
        start = time.monotonic()
        sync = Running(
            f"--repo={url}", f"--root={root}", "--link=current", "--period=1h", log=base / "c.log"
        )
        try:
            wait(lambda root=root: published(root / "current"), 120)  # type: ignore[misc]
            sync_times.append(time.monotonic() - start)
            rss = max(rss, peak_rss_mb(sync.process.pid))
        finally:
            sync.stop()
    return min(sync_times), min(clone_times), rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller repository")
    opts = parser.parse_args()
    polls, rounds, files = (10, 5, 2000) if opts.quick else (40, 15, 20000)
    base = Path(tempfile.mkdtemp(prefix="bench-git-sync."))
    try:
        per_poll, per_fetch = idle_poll_cpu(base, polls)
        print(
            f"(a) idle poll CPU {per_poll * 1000:.1f} ms vs bare git fetch "
            f"{per_fetch * 1000:.1f} ms: ratio {per_poll / per_fetch:.2f}x (target <= 1.5x)"
        )
        period, rss_b = latency(base, rounds, trigger=False)
        triggered, rss_t = latency(base, rounds, trigger=True)
        print(
            f"(b) push-to-published, --period=1s: median {statistics.median(period) * 1000:.0f}"
            f" ms over {len(period)} (target <= 650 ms); with trigger: median "
            f"{statistics.median(triggered) * 1000:.0f} ms, max {max(triggered) * 1000:.0f} ms"
            f" over {len(triggered)} (target <= 300 ms)"
        )
        sync_s, clone_s, rss_c = first_sync(base, files)
        print(
            f"(c) first sync of {files} files {sync_s:.2f} s vs git clone --depth 1 "
            f"{clone_s:.2f} s: ratio {sync_s / clone_s:.2f}x (target <= 1.3x)"
        )
        print(
            f"(d) peak RSS of the git-sync process {max(rss_b, rss_t, rss_c):.1f} MB "
            "(target <= 40 MB)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
