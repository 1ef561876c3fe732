"""The pod patterns' manifests run as real pods: ``podman kube play`` of the rendered bases with
the project's images, then checks of behaviour through the pods, and of the hardening the
containers actually get (non-root, read-only root, no capabilities, no new privileges, seccomp).

- web: nginx serves the commit git-sync published, and a new push appears;
- cache: the demo app's writes reach the Redis master and its reads a replica, via the ambassador,
  with static upstreams and with discovery through the example Sentinel;
- metrics: the app's StatsD and the JVM's JMX (through Jolokia) arrive as Prometheus series on
  the adapter's /metrics.

What the tests change in the rendered YAML, and why (nothing else is touched):
- every containerPort gets a free hostPort on 127.0.0.1: podman 4.3 publishes containerPorts on
  the host anyway (on 0.0.0.0 and the same port number when no hostPort is given);
- one replica (podman plays one pod per Deployment);
- ConfigMap volumes get defaultMode 0755: podman 4.3 applies defaultMode to the volume's directory
  as well, and 0644 leaves it untraversable for a non-root process (Kubernetes applies it to files);
- web: ``--repo`` points at a ``git daemon`` that the test adds to the pod, serving a repository on
  the host through a read-only hostPath volume (the stand-in for GitHub);
- cache: the Redis StatefulSets are played as Pods, one each (podman has no StatefulSet, and no
  Services: ``hostAliases`` give the Service names ``redis-master``/``redis-replica``/
  ``redis-sentinel`` the pods' addresses), the overlay's namespace is dropped,
  with a host directory owned by the pod's uid as data volume (what fsGroup gives on a cluster;
  podman 4.3 ignores fsGroup).
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.docker_images import IMAGE_TAGS, ensure_image
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


def _publish_on_loopback(spec: Document) -> dict[str, int]:
    """Give every containerPort a free hostPort on 127.0.0.1; return {port name: host port}."""
    published = {}
    for container in spec["containers"]:
        for port in container.get("ports", []):
            kind = socket.SOCK_DGRAM if port.get("protocol") == "UDP" else socket.SOCK_STREAM
            port.update(hostIP="127.0.0.1", hostPort=free_port(kind))
            published[port.get("name", str(port["containerPort"]))] = port["hostPort"]
    return published


def _config_volumes_traversable(spec: Document) -> None:
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            volume["configMap"]["defaultMode"] = 0o755


def _adapt_web_for_podman(docs: list[Document], remote: GitRemote) -> list[Document]:
    deployment = find(docs, "Deployment", "web")
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    deployment["spec"]["replicas"] = 1
    spec = pod_spec(deployment)
    _config_volumes_traversable(spec)
    git_sync = next(c for c in spec["containers"] if c["name"] == "git-sync")
    repo = f"--repo=git://127.0.0.1:9418/{remote.bare.name}"
    git_sync["args"] = [repo if a.startswith("--repo=") else a for a in git_sync["args"]]
    assert repo in git_sync["args"], "the manifest no longer passes --repo=URL"
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


def _assert_hardened(podman: Podman, container: str) -> None:
    status = podman.exec(container, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields, f"cannot read /proc/1/status in {container}"
    assert fields["Uid"].split()[0] != "0", f"{container} runs as root"
    assert fields["CapEff"].strip() == "0000000000000000", f"{container} has capabilities"
    assert fields["CapBnd"].strip() == "0000000000000000", f"{container} can regain some"
    assert fields["NoNewPrivs"].strip() == "1", f"{container} may gain privileges"
    assert fields["Seccomp"].strip() == "2", f"{container} has no seccomp filter"
    write = podman.exec(container, "touch", "/should-be-read-only")
    assert write.returncode != 0 and "Read-only file system" in write.stderr, container


def _assert_memory_within_limits(podman: Podman, containers: list[str]) -> None:
    """The manifest's memory limits are applied, and the measured usage stays well below them
    (printed too: the numbers the requests and limits are sized from; see pytest -s)."""
    stats = {
        s["name"]: s for s in json.loads(podman.run("stats", "--no-stream", "--format", "json"))
    }
    for name in containers:
        limit = int(podman.run("inspect", name, "--format", "{{.HostConfig.Memory}}").strip())
        assert limit > 0, f"{name} runs without a memory limit"
        usage = stats[name]["mem_usage"]
        print(f"memory {name}: {usage}")
        assert float(stats[name]["mem_percent"].rstrip("%")) < 80, (
            f"{name}: {usage}, near its limit"
        )


def _container(podman: Podman, workload: str, container: str) -> str:
    """The podman name of a container in the pod ``kube play`` made for ``workload``: podman names
    it ``<pod>-<container>``; the pod of a Pod has its name, that of a Deployment
    ``<workload>-pod-0`` (podman 4) or ``<workload>-pod``."""
    pods = podman.run("pod", "ps", "--format", "{{.Name}}").split()
    names = podman.run("ps", "-a", "--format", "{{.Names}}").split()
    ours = [pod for pod in pods if pod == workload or pod.startswith(f"{workload}-pod")]
    wanted = {f"{pod}-{container}" for pod in ours}
    matches = [name for name in names if name in wanted]
    assert len(matches) == 1, f"no single container {container} of {workload} in {names}"
    return matches[0]


def test_web_pod_serves_the_synced_commit_and_follows_pushes(
    podman: Podman, tmp_path: Path
) -> None:
    require_program("git")
    podman.load(ensure_image("git-sync"), NGINX_IMAGE)
    remote = make_git_remote(tmp_path / "remote")
    # The pod's users (65533) read the repository through the hostPath mount.
    for directory in (tmp_path, remote.bare.parent):
        directory.chmod(0o755)
    first = remote.commit({"index.html": "<h1>served by the web pod</h1>\n"}, message="site v1")

    docs = _adapt_web_for_podman(render("base/web"), remote)
    ports = _publish_on_loopback(pod_spec(find(docs, "Deployment", "web")))
    nginx_port, git_sync_port = ports["http"], ports["git-sync"]
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
        _assert_hardened(podman, container)
    _assert_memory_within_limits(podman, [nginx, git_sync])
    # The worktree's git metadata is not published (nginx.conf denies /.git).
    dot_git = _get(f"{site}.git")
    assert dot_git is not None and dot_git.status_code == 403, "the .git file is served"
    # nginx may read the synced tree but never write it.
    write = podman.exec(nginx, "touch", "/git/current/intruder")
    assert write.returncode != 0 and "Read-only file system" in write.stderr


REDIS_IMAGE = "redis:7"
PYTHON_IMAGE = "python:3.11-slim"


def _statefulset_as_pod(
    statefulset: Document, data: Path, aliases: dict[str, str], uid: int
) -> Document:
    """The StatefulSet's pod template as a Pod, its data volume a host directory owned by
    ``uid`` (fsGroup's job on a cluster), Service names resolved through hostAliases."""
    template = copy.deepcopy(statefulset["spec"]["template"])
    spec = template["spec"]
    data.mkdir(parents=True)
    os.chown(data, uid, uid)
    volumes = [v for v in spec.get("volumes", []) if v["name"] != "data"]
    spec["volumes"] = [*volumes, {"name": "data", "hostPath": {"path": str(data)}}]
    if aliases:
        spec["hostAliases"] = [{"ip": ip, "hostnames": [name]} for name, ip in aliases.items()]
    _publish_on_loopback(spec)
    name = statefulset["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _pod_ip(podman: Podman, container: str) -> str:
    address = podman.run(
        "inspect", container, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    ).strip()
    assert re.fullmatch(r"[0-9.]+", address), f"no IPv4 address for {container}: {address!r}"
    return address


def _answers_ping(podman: Podman, container: str, port: int) -> bool:
    return "PONG" in podman.exec(container, "redis-cli", "-p", str(port), "ping").stdout


def _unnamespaced(doc: Document) -> Document:
    """podman plays everything in one place: drop the overlay's namespace."""
    doc = copy.deepcopy(doc)
    doc["metadata"].pop("namespace", None)
    return doc


def _redis_calls(podman: Podman, container: str) -> dict[str, int]:
    """Calls per command on a Redis node (INFO commandstats), e.g. {"get": 12}."""
    info = podman.exec(container, "redis-cli", "-p", "6379", "info", "commandstats").stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", info)}


@pytest.mark.parametrize(
    ("kustomization", "discovery"),
    [("base/cache", "static"), ("overlays/demo-native-sidecar", "sentinel")],
)
def test_cache_pod_sends_writes_to_the_master_and_reads_to_a_replica(
    podman: Podman, tmp_path: Path, kustomization: str, discovery: str
) -> None:
    """Static upstreams (base), and discovery through the example Sentinel
    (components/ambassador-sentinel, in the native-sidecar overlay)."""
    podman.load(ensure_image("redis-ambassador"), REDIS_IMAGE)
    docs = render(kustomization)
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    addresses: dict[str, str] = {}
    nodes: dict[str, str] = {}
    statefulsets = ["redis-master", "redis-replica"]
    if discovery == "sentinel":
        statefulsets.append("redis-sentinel")
    for name in statefulsets:
        statefulset = find(docs, "StatefulSet", name)
        uid = pod_spec(statefulset)["securityContext"]["runAsUser"]
        aliases = {"redis-master": addresses["redis-master"]} if addresses else {}
        pod = _statefulset_as_pod(statefulset, tmp_path / name, aliases, uid)
        _config_volumes_traversable(pod["spec"])
        used = [v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v]
        podman.play([*(_unnamespaced(configmaps[c]) for c in used), pod], name)
        (container,) = pod["spec"]["containers"]
        node = nodes[name] = _container(podman, name, container["name"])
        port = container["ports"][0]["containerPort"]
        wait_for(
            f"{name} to answer",
            partial(_answers_ping, podman, node, port),
            30,
            partial(podman.logs, node),
        )
        addresses[name] = _pod_ip(podman, node)
    master, replica = nodes["redis-master"], nodes["redis-replica"]
    wait_for(
        "the replica to sync",
        lambda: (
            "master_link_status:up"
            in podman.exec(replica, "redis-cli", "info", "replication").stdout
        ),
        30,
        lambda: podman.logs(replica),
    )
    if discovery == "sentinel":
        sentinel = nodes["redis-sentinel"]
        wait_for(
            "Sentinel to know the master and the replica",
            lambda: (
                "num-slaves\n1\n"
                in podman.exec(
                    sentinel, "redis-cli", "-p", "26379", "sentinel", "master", "mymaster"
                ).stdout
            ),
            30,
            lambda: podman.logs(sentinel),
        )

    deployment = _unnamespaced(find(docs, "Deployment", "cache-demo"))
    deployment["spec"]["replicas"] = 1
    spec = pod_spec(deployment)
    spec["hostAliases"] = [{"ip": ip, "hostnames": [name]} for name, ip in addresses.items()]
    ports = _publish_on_loopback(spec)
    podman.play([deployment], "cache-demo")
    app = _container(podman, "cache-demo", "app")
    ambassador = _container(podman, "cache-demo", "redis-ambassador")

    def logs() -> str:
        return "\n".join(podman.logs(c) for c in (ambassador, app))

    def ready() -> bool:
        response = _get(f"http://127.0.0.1:{ports['ambassador']}/ready")
        return response is not None and response.status_code == 200

    wait_for("the ambassador to be ready", ready, 60, logs)

    def rounds() -> list[tuple[int, str]]:
        found = re.findall(r"^wrote (\d+), read (\S*)$", podman.logs(app, tail=1000), re.MULTILINE)
        return [(int(written), read) for written, read in found]

    # The app loops every 2 s: INCR, SET (writes), GET (read), all to 127.0.0.1:6379. A read may
    # trail its write by the replication lag, so count the rounds whose read returned a number.
    def good_rounds() -> int:
        return sum(1 for _, read in rounds() if read.isdigit())

    wait_for("three write/read rounds of the app", lambda: good_rounds() >= 3, 60, logs)

    on_master, on_replica = _redis_calls(podman, master), _redis_calls(podman, replica)
    assert on_master.get("incr", 0) >= 3 and on_master.get("set", 0) >= 3, on_master
    # prefer-replica with a healthy replica: every GET went to the replica, none to the master.
    assert on_replica.get("get", 0) >= 3, on_replica
    assert on_master.get("get", 0) == 0, on_master
    # The replica only applied what the master replicated: it has the master's counter.
    counter = podman.exec(replica, "redis-cli", "get", "demo:counter").stdout.strip()
    assert counter.isdigit() and int(counter) >= 3

    metrics = _get(f"http://127.0.0.1:{ports['ambassador']}/metrics")
    assert metrics is not None and metrics.status_code == 200 and "# TYPE" in metrics.text

    for container in (app, ambassador, *nodes.values()):
        _assert_hardened(podman, container)
    _assert_memory_within_limits(podman, [app, ambassador, *nodes.values()])


def _series(text: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of every sample of ``name`` in a Prometheus text exposition."""
    pattern = rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$"
    return [(m[1] or "", float(m[2])) for m in re.finditer(pattern, text, re.MULTILINE)]


def test_metrics_pod_exposes_statsd_and_jmx_as_prometheus_series(podman: Podman) -> None:
    podman.load(ensure_image("metrics-adapter"), ensure_image("jmx-demo"), PYTHON_IMAGE)
    docs = render("base/metrics")
    deployment = find(docs, "Deployment", "metrics-demo")
    deployment["spec"]["replicas"] = 1
    spec = pod_spec(deployment)
    _config_volumes_traversable(spec)
    ports = _publish_on_loopback(spec)
    podman.play([*(d for d in docs if d["kind"] == "ConfigMap"), deployment], "metrics-demo")
    app = _container(podman, "metrics-demo", "app")
    jvm = _container(podman, "metrics-demo", "jvm-app")
    adapter = _container(podman, "metrics-demo", "metrics-adapter")

    def logs() -> str:
        return "\n".join(podman.logs(c) for c in (adapter, app, jvm))

    def ok(url: str) -> bool:
        response = _get(url)
        return response is not None and response.status_code == 200

    adapter_url = f"http://127.0.0.1:{ports['adapter']}"
    wait_for("the adapter to be ready", lambda: ok(f"{adapter_url}/-/ready"), 60, logs)
    wait_for("the app to answer", lambda: ok(f"http://127.0.0.1:{ports['http']}/healthz"), 60, logs)
    assert ok(f"{adapter_url}/-/healthy")

    requests_made = 7
    for _ in range(requests_made):
        assert ok(f"http://127.0.0.1:{ports['http']}/")

    def scraped() -> str:
        response = _get(f"{adapter_url}/metrics")
        return response.text if response is not None and response.status_code == 200 else ""

    def counted() -> bool:
        samples = _series(scraped(), "demo_http_requests_total")
        return samples == [('{method="get"}', float(requests_made))]

    # Mapped by mapping.yml from demo.http.requests.get (UDP, so allow a moment to arrive).
    wait_for("the app's requests to be counted", counted, 30, lambda: scraped() + logs())
    text = scraped()
    assert _series(text, "demo_http_request_duration_seconds_count") == [("", requests_made)]

    # The app reports its gauge every 5 s (the first one may precede the adapter's start).
    def gauge_arrived() -> bool:
        return bool(_series(scraped(), "demo_queue_depth"))

    wait_for("the app's gauge", gauge_arrived, 20, lambda: scraped() + logs())

    # JMX: jmx.yml's rules over the JVM's MBeans, read through Jolokia on 127.0.0.1:8778.
    def jmx_scraped() -> bool:
        return _series(scraped(), "jmx_scrape_error") == [("", 0.0)]

    wait_for("a successful JMX scrape", jmx_scraped, 60, lambda: scraped() + logs())
    text = scraped()
    heap = dict(_series(text, "jvm_memory_used_bytes"))
    assert heap.get('{area="Heap"}', 0) > 0, f"no JVM heap series:\n{text}"
    assert _series(text, "jvm_threads") and _series(text, "jvm_threads")[0][1] > 0
    assert any(name.startswith("demo_requests") for name in re.findall(r"^(\w+)\{", text, re.M))
    for container in (app, jvm, adapter):
        _assert_hardened(podman, container)
    _assert_memory_within_limits(podman, [app, jvm, adapter])
