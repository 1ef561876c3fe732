"""The web pattern's manifests run as a real pod: ``podman kube play`` of the rendered
``manifests/base/web`` with the project's git-sync image and nginx, then, through the pod:
nginx serves the synced commit, a new push appears, and the hardening in the manifest is what the
containers actually get (non-root, read-only root, no capabilities, no new privileges, seccomp).

What the test changes in the rendered YAML, and why (nothing else is touched):
- the git remote: ``--repo`` points at a ``git daemon`` that the test adds to the pod, serving a
  repository on the host through a read-only hostPath volume (the stand-in for GitHub);
- hostPorts on 127.0.0.1 for nginx and git-sync, so the test reaches them on loopback;
- one replica (podman plays one pod);
- ConfigMap volumes get defaultMode 0755: podman 4.3 applies defaultMode to the volume's directory
  as well, and 0644 leaves it untraversable for a non-root nginx (Kubernetes applies it to files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.docker_images import IMAGE_TAGS
from tests.fixtures.git_remote import GitRemote, make_git_remote
from tests.fixtures.kustomize import Document, find, pod_spec, render
from tests.fixtures.podman import Podman, wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.requirements import require_program

pytestmark = pytest.mark.docker

NGINX_IMAGE = "nginx:1.22"


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def _adapt_web_for_podman(
    docs: list[Document], remote: GitRemote, nginx_port: int, git_sync_port: int
) -> list[Document]:
    deployment = find(docs, "Deployment", "web")
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    deployment["spec"]["replicas"] = 1
    spec = pod_spec(deployment)
    containers = {c["name"]: c for c in spec["containers"]}
    nginx, git_sync = containers["nginx"], containers["git-sync"]
    nginx["ports"][0].update(hostPort=nginx_port, hostIP="127.0.0.1")
    git_sync["ports"][0].update(hostPort=git_sync_port, hostIP="127.0.0.1")
    repo = f"--repo=git://127.0.0.1:9418/{remote.bare.name}"
    git_sync["args"] = [repo if a.startswith("--repo=") else a for a in git_sync["args"]]
    assert repo in git_sync["args"], "the manifest no longer passes --repo=URL"
    for volume in spec["volumes"]:
        if "configMap" in volume:
            volume["configMap"]["defaultMode"] = 0o755
    daemon: dict[str, Any] = {
        "name": "git-daemon",
        "image": IMAGE_TAGS["git-sync"],  # has git; the remote is test scaffolding, not the SUT
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "git",
            "-c",
            "safe.directory=*",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            "--port=9418",
            "--base-path=/srv/git",
            "/srv/git",
        ],
        "volumeMounts": [{"name": "remote", "mountPath": "/srv/git", "readOnly": True}],
    }
    spec["containers"].append(daemon)
    spec["volumes"].append(
        {"name": "remote", "hostPath": {"path": str(remote.bare.parent), "type": "Directory"}}
    )
    return [*configmaps, deployment]


def _container(podman: Podman, workload: str, container: str) -> str:
    names = podman.run("ps", "-a", "--format", "{{.Names}}").split()
    matches = [n for n in names if n.startswith(f"{workload}-") and n.endswith(f"-{container}")]
    assert len(matches) == 1, f"no single container {container} of {workload} in {names}"
    return matches[0]


def test_web_pod_serves_the_synced_commit_and_follows_pushes(
    podman: Podman, tmp_path: Path
) -> None:
    require_program("git")
    podman.load(IMAGE_TAGS["git-sync"], NGINX_IMAGE)
    remote = make_git_remote(tmp_path / "remote")
    # The pod's users (65533) read the repository through the hostPath mount.
    for directory in (tmp_path, remote.bare.parent):
        directory.chmod(0o755)
    first = remote.commit({"index.html": "<h1>served by the web pod</h1>\n"}, message="site v1")

    nginx_port, git_sync_port = free_port(), free_port()
    docs = _adapt_web_for_podman(render("base/web"), remote, nginx_port, git_sync_port)
    podman.play(docs, "web")
    nginx = _container(podman, "web", "nginx")
    git_sync = _container(podman, "web", "git-sync")

    def logs() -> str:
        return "\n".join(podman.logs(c) for c in (git_sync, nginx))

    site = f"http://127.0.0.1:{nginx_port}/"

    def serves(text: str) -> bool:
        response = _get(site)
        return response is not None and response.status_code == 200 and text in response.text

    # git-sync is ready ("/" 200) once the first sync is published, and nginx serves it.
    wait_for("the first sync to be served", lambda: serves("served by the web pod"), 90, logs)
    ready = _get(f"http://127.0.0.1:{git_sync_port}/")
    assert ready is not None and ready.status_code == 200, logs()
    link = podman.exec(nginx, "readlink", "/git/current")
    assert first in link.stdout, f"/git/current -> {link.stdout!r}, expected commit {first}"

    # A new push appears within the sync period (--period=10s in the manifest) plus slack.
    second = remote.commit({"index.html": "<h1>second push</h1>\n"}, message="site v2")
    wait_for("the new push to be served", lambda: serves("second push"), 60, logs)
    link = podman.exec(nginx, "readlink", "/git/current")
    assert second in link.stdout, f"/git/current -> {link.stdout!r}, expected commit {second}"

    # git-sync's metrics (the pod's scrape target) count the successful syncs.
    metrics = _get(f"http://127.0.0.1:{git_sync_port}/metrics")
    assert metrics is not None and metrics.status_code == 200
    assert 'git_sync_count_total{status="success"}' in metrics.text

    # The manifest's security settings are what the processes actually run with.
    for container in (nginx, git_sync):
        status = podman.exec(container, "cat", "/proc/1/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split()[0] != "0", f"{container} runs as root"
        assert fields["CapEff"].strip() == "0000000000000000", f"{container} has capabilities"
        assert fields["CapBnd"].strip() == "0000000000000000", f"{container} can regain some"
        assert fields["NoNewPrivs"].strip() == "1", f"{container} may gain privileges"
        assert fields["Seccomp"].strip() == "2", f"{container} has no seccomp filter"
        write = podman.exec(container, "touch", "/should-be-read-only")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, container
    # nginx may read the synced tree but never write it.
    write = podman.exec(nginx, "touch", "/git/current/intruder")
    assert write.returncode != 0 and "Read-only file system" in write.stderr
