"""Offline checks of the Kubernetes manifests: every kustomization renders with
``kubectl kustomize``, every document validates strictly against the API schemas of Kubernetes
1.29 to 1.33 (kubernetes-validate), and every container of every workload follows the hardening
rules of the project (a table of rules below, each one a function of container and pod)."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.fixtures.docker_images import IMAGE_TAGS
from tests.fixtures.kustomize import (
    MANIFESTS,
    REPO_ROOT,
    WORKLOAD_KINDS,
    Document,
    containers,
    find,
    kustomizations,
    pod_metadata,
    pod_spec,
    render,
)
from tests.fixtures.requirements import require_program

KUBERNETES_VERSIONS = ["1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0"]
KUSTOMIZATIONS = kustomizations()

# Kinds from CRDs: no schema ships with Kubernetes, so kubernetes-validate cannot check them.
# ServiceMonitor is checked below against the Services it selects instead.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def test_the_expected_kustomizations_exist() -> None:
    assert set(KUSTOMIZATIONS) >= {
        "base/web",
        "base/cache",
        "base/metrics",
        "overlays/demo",
        "overlays/demo-native-sidecar",
        "overlays/demo-prometheus-operator",
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_document_validates_strictly(kustomization: str, version: str) -> None:
    docs = render(kustomization)
    assert docs, f"{kustomization} renders nothing"
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            pytest.fail(f"{kustomization}: {name} invalid for {version} at {path}: {error.message}")


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The control for the test above: a typo the API server would silently drop is an error."""
    deployment = copy.deepcopy(find(render("base/web"), "Deployment", "web"))
    pod_spec(deployment)["containers"][0]["securityContxt"] = {"runAsNonRoot": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.29.0", strict=True)


# ---------------------------------------------------------------------------------------------
# Best-practice rules. Each returns a problem description, or None when the container complies.
# Pod-level settings count where Kubernetes applies them to every container (runAsNonRoot,
# seccompProfile); the rest are container-only fields.

Rule = Callable[[str, Document, Document, Document], str | None]


def _effective(container: Document, pod: Document, key: str) -> Any:
    value = container.get("securityContext", {}).get(key)
    return value if value is not None else pod.get("securityContext", {}).get(key)


def _run_as_non_root(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    if _effective(c, pod, "runAsNonRoot") is not True:
        return "runAsNonRoot is not true"
    if _effective(c, pod, "runAsUser") == 0:
        return "runAsUser is 0"
    return None


def _read_only_root(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    ok = c.get("securityContext", {}).get("readOnlyRootFilesystem") is True
    return None if ok else "readOnlyRootFilesystem is not true"


def _no_privilege_escalation(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    context = c.get("securityContext", {})
    if context.get("privileged"):
        return "privileged"
    return None if context.get("allowPrivilegeEscalation") is False else "may escalate privileges"


def _drops_all_capabilities(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    capabilities = c.get("securityContext", {}).get("capabilities", {})
    if capabilities.get("drop") != ["ALL"]:
        return f"capabilities.drop is {capabilities.get('drop')!r}, not ['ALL']"
    return f"adds capabilities {capabilities['add']}" if capabilities.get("add") else None


def _seccomp_runtime_default(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    profile = _effective(c, pod, "seccompProfile") or {}
    return None if profile.get("type") == "RuntimeDefault" else f"seccompProfile is {profile!r}"


def _requests_and_limits(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    resources = c.get("resources", {})
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(section, {}):
                return f"no {section}.{resource}"
    return None


def _probes(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    if kind == "init":  # runs to completion before the pod starts; probes are not allowed
        return None
    missing = [p for p in ("readinessProbe", "livenessProbe") if p not in c]
    return f"no {' or '.join(missing)}" if missing else None


def _probe_ports_exist(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    names = {p.get("name") for p in c.get("ports", [])}
    numbers = {p["containerPort"] for p in c.get("ports", [])}
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = c.get(probe_name, {})
        for handler in ("httpGet", "tcpSocket"):
            if handler in probe:
                port = probe[handler]["port"]
                if port not in names and port not in numbers:
                    return f"{probe_name} uses port {port!r} that the container does not declare"
    return None


def _image_pinned_and_local(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    image: str = c["image"]
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        return f"image {image} has no explicit tag"
    if c.get("imagePullPolicy") != "IfNotPresent":
        return f"imagePullPolicy is {c.get('imagePullPolicy')!r}, not IfNotPresent"
    return None


def _writable_mounts_bounded(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None:
            continue  # a volumeClaimTemplate: sized by its storage request
        if "hostPath" in volume:
            return f"mounts hostPath volume {mount['name']}"
        if "emptyDir" in volume and "sizeLimit" not in volume["emptyDir"]:
            return f"emptyDir {mount['name']} has no sizeLimit"
        if ("configMap" in volume or "secret" in volume) and not mount.get("readOnly"):
            return f"config volume {mount['name']} is not mounted readOnly"
    return None


def _pod_hardening(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            return f"pod sets {flag}"
    if pod.get("automountServiceAccountToken") is not False:
        return "the pod mounts a service account token it does not need"
    return None


def _scrape_annotations(kind: str, c: Document, pod: Document, meta: Document) -> str | None:
    annotations = meta.get("annotations", {})
    scrape = annotations.get("prometheus.io/scrape")
    if scrape not in {"true", "false"}:
        return "no prometheus.io/scrape annotation"
    if scrape == "true":
        declared = {
            str(p["containerPort"]) for _, cc in _all_containers(pod) for p in cc.get("ports", [])
        }
        if annotations.get("prometheus.io/port") not in declared:
            return f"prometheus.io/port {annotations.get('prometheus.io/port')!r} is not declared"
        if not str(annotations.get("prometheus.io/path", "")).startswith("/"):
            return "no prometheus.io/path"
    return None


def _all_containers(pod: Document) -> list[tuple[str, Document]]:
    return list(containers({"kind": "Pod", "metadata": {}, "spec": pod}))


RULES: dict[str, Rule] = {
    "runAsNonRoot": _run_as_non_root,
    "readOnlyRootFilesystem": _read_only_root,
    "allowPrivilegeEscalation": _no_privilege_escalation,
    "capabilities": _drops_all_capabilities,
    "seccompProfile": _seccomp_runtime_default,
    "resources": _requests_and_limits,
    "probes": _probes,
    "probe ports": _probe_ports_exist,
    "image": _image_pinned_and_local,
    "writable paths": _writable_mounts_bounded,
    "pod hardening": _pod_hardening,
    "scrape annotations": _scrape_annotations,
}

# (workload, container, rule) -> why it is acceptable. Empty: every container meets every rule.
EXCEPTIONS: dict[tuple[str, str, str], str] = {}


def _workloads(kustomization: str) -> list[Document]:
    return [d for d in render(kustomization) if d["kind"] in WORKLOAD_KINDS]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("rule", list(RULES))
def test_every_container_follows_the_rule(kustomization: str, rule: str) -> None:
    workloads = _workloads(kustomization)
    assert workloads, f"{kustomization} has no workloads"
    problems = []
    checked = 0
    for workload in workloads:
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        for kind, container in containers(workload):
            checked += 1
            problem = RULES[rule](kind, container, pod_spec(workload), pod_metadata(workload))
            key = (workload["metadata"]["name"], container["name"], rule)
            if problem and key not in EXCEPTIONS:
                problems.append(f"{name} container {container['name']}: {problem}")
    assert checked > 0
    assert not problems, "\n".join(problems)


def test_the_rules_catch_an_insecure_container() -> None:
    """The control for the table: a container with none of the settings breaks every rule."""
    bad = {
        "name": "bad",
        "image": "nginx",
        "ports": [{"containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 9999}},
        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
    }
    pod: Document = {"containers": [bad], "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}
    broken = {rule for rule, check in RULES.items() if check("container", bad, pod, {})}
    assert broken == set(RULES)


# ---------------------------------------------------------------------------------------------
# Wiring: what points at what must exist.


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_services_select_pods_and_ports_that_exist(kustomization: str) -> None:
    docs = render(kustomization)
    workloads = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        selected = [
            w
            for w in workloads
            if selector.items() <= pod_metadata(w).get("labels", {}).items()
            and w["metadata"].get("namespace") == service["metadata"].get("namespace")
        ]
        name = service["metadata"]["name"]
        assert len(selected) == 1, f"Service {name} selects {len(selected)} workloads"
        declared = {
            p.get("name"): p.get("protocol", "TCP")
            for _, c in containers(selected[0])
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, f"Service {name}: no port {port['targetPort']}"
            assert declared[port["targetPort"]] == port.get("protocol", "TCP")


def test_service_monitors_select_services_and_named_ports() -> None:
    docs = render("overlays/demo-prometheus-operator")
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {
        "web-git-sync",
        "cache-demo-ambassador",
        "metrics-demo-adapter",
    }
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        assert monitor["metadata"]["namespace"] == "podpatterns-demo"
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, f"{monitor['metadata']['name']} matches {len(matched)} Services"
        port_names = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"


def test_the_demo_overlay_namespaces_everything_under_the_restricted_standard() -> None:
    docs = render("overlays/demo")
    namespace = find(docs, "Namespace", "podpatterns-demo")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "podpatterns-demo", doc["metadata"]["name"]


def test_project_images_are_the_ones_the_repository_builds() -> None:
    used = {
        c["image"]
        for k in KUSTOMIZATIONS
        for w in _workloads(k)
        for _, c in containers(w)
        if c["image"].startswith("podpatterns/")
    }
    assert used == set(IMAGE_TAGS.values())
    for name in IMAGE_TAGS:
        assert (REPO_ROOT / "images" / f"{name}.Dockerfile").is_file(), name


def test_git_sync_is_a_plain_container_by_default() -> None:
    web = pod_spec(find(render("overlays/demo"), "Deployment", "web"))
    assert "initContainers" not in web
    assert [c["name"] for c in web["containers"]] == ["nginx", "git-sync"]


def test_native_sidecar_overlay_starts_git_sync_first_and_keeps_it_running() -> None:
    web = pod_spec(find(render("overlays/demo-native-sidecar"), "Deployment", "web"))
    assert [c["name"] for c in web["containers"]] == ["nginx"]
    (sidecar,) = web["initContainers"]
    assert sidecar["name"] == "git-sync"
    assert sidecar["restartPolicy"] == "Always"
    # The kubelet holds nginx back until this passes: git-sync's "/" is 200 after the first sync.
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/", "port": "git-sync"}
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    nginx_mounts = {m["mountPath"]: m for m in web["containers"][0]["volumeMounts"]}
    assert mounts["/git"]["name"] == nginx_mounts["/git"]["name"]
    assert nginx_mounts["/git"]["readOnly"] is True


def test_sentinel_component_switches_the_ambassador_to_discovery() -> None:
    pod = pod_spec(find(render("overlays/demo-native-sidecar"), "Deployment", "cache-demo"))
    ambassador = next(c for c in pod["containers"] if c["name"] == "redis-ambassador")
    args = " ".join(ambassador["args"])
    assert "--sentinel redis-sentinel:26379 --sentinel-master mymaster" in args
    assert "--master" not in args
    sentinel = find(render("overlays/demo-native-sidecar"), "Service", "redis-sentinel")
    assert sentinel["spec"]["ports"][0]["port"] == 26379


def test_git_sync_publishes_where_nginx_serves() -> None:
    docs = render("base/web")
    pod = pod_spec(find(docs, "Deployment", "web"))
    git_sync = next(c for c in pod["containers"] if c["name"] == "git-sync")
    flags = dict(a.removeprefix("--").split("=", 1) for a in git_sync["args"] if "=" in a)
    link = f"{flags['root']}/{flags['link']}"
    configmap = next(d for d in docs if d["kind"] == "ConfigMap" and "nginx.conf" in d["data"])
    assert f"root {link};" in configmap["data"]["nginx.conf"]
    # One network namespace: git-sync's HTTP port must not be nginx's.
    nginx_port = pod["containers"][0]["ports"][0]["containerPort"]
    assert int(flags["http-bind"].rsplit(":", 1)[1]) != nginx_port


def test_adapter_config_files_are_mounted_and_parse() -> None:
    docs = render("base/metrics")
    pod = pod_spec(find(docs, "Deployment", "metrics-demo"))
    adapter = next(c for c in pod["containers"] if c["name"] == "metrics-adapter")
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    for arg in adapter["args"]:
        flag, _, path = arg.partition("=")
        if flag not in {"--statsd.mapping-config", "--jmx.config"}:
            continue
        mount = next(m for m in adapter["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        configmap = configmaps[volumes[mount["name"]]["configMap"]["name"]]
        content = yaml.safe_load(configmap["data"][path.rsplit("/", 1)[1]])
        assert isinstance(content, dict)
        assert content.get("mappings") or content.get("rules"), f"{path} has no rules"


def test_shell_scripts_in_manifests_are_valid_sh() -> None:
    sh = require_program("sh")
    scripts = [
        c["command"][2]
        for k in KUSTOMIZATIONS
        for w in _workloads(k)
        for _, c in containers(w)
        if c.get("command", [])[:2] == ["sh", "-c"]
    ]
    assert scripts
    for script in scripts:
        done = subprocess.run([sh, "-n", "-c", script], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{script!r}: {done.stderr}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_pod_is_fenced_by_a_network_policy(kustomization: str) -> None:
    """Default-deny in both directions for every pod: a policy with Ingress and Egress selects
    it, and the named ports the policy opens are ports of those pods."""
    docs = render(kustomization)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for workload in (d for d in docs if d["kind"] in WORKLOAD_KINDS):
        labels = pod_metadata(workload).get("labels", {})
        selecting = [
            p
            for p in policies
            if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        ]
        name = workload["metadata"]["name"]
        assert selecting, f"no NetworkPolicy selects the pods of {name}"
        port_names = {p.get("name") for _, c in containers(workload) for p in c.get("ports", [])}
        for policy in selecting:
            for rule in policy["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    if isinstance(port["port"], str):
                        assert port["port"] in port_names, f"{name}: no port {port['port']}"


def _checkov() -> str:
    """checkov from its own venv (``make manifests-check`` creates .venv-checkov), or PATH."""
    local = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
    return str(local) if local.exists() else require_program("checkov")


def test_checkov_finds_nothing_unjustified_in_the_overlays(tmp_path: Path) -> None:
    checkov = _checkov()
    overlays = [k for k in KUSTOMIZATIONS if k.startswith("overlays/")]
    for overlay in overlays:
        documents = render(overlay)
        (tmp_path / f"{overlay.replace('/', '_')}.yaml").write_text(yaml.safe_dump_all(documents))
    done = subprocess.run(
        [
            checkov,
            "--config-file",
            str(MANIFESTS / ".checkov.yaml"),
            "-d",
            str(tmp_path),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{f['check_id']} {f['check_name']}: {f['resource']}"
        for report in reports
        for f in report["results"]["failed_checks"]
    ]
    passed = sum(report["summary"]["passed"] for report in reports)
    assert not failed, "\n".join(failed)
    assert passed > 100 * len(overlays), f"checkov checked too little: {passed} passed"
    assert done.returncode == 0, done.stderr
