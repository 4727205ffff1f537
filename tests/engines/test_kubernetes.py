"""The kubernetes engine: real `kubectl kustomize` renders offline; apply only as far as its missing cluster."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.engines.conftest import RecordingIO, write_tree
from xcloudflow.engines.base import EngineFailed, EngineSpec, EngineUnavailable
from xcloudflow.engines.kubernetes import KubernetesEngine, parse_manifests

KUSTOMIZATION = """\
namespace: web
resources: [config.yaml, namespace.yaml]
labels:
  - pairs: {app: web}
"""
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "repo",
        {
            "modules/web/kustomization.yaml": KUSTOMIZATION,
            "modules/web/config.yaml": CONFIG,
            "modules/web/namespace.yaml": NAMESPACE,
            "modules/plain/b.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ops}\n",
            "modules/plain/a.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "modules/plain/README.md": "not a manifest",
            "modules/bad-kustomize/kustomization.yaml": "resources: [missing.yaml]\n",
            "modules/not-k8s/x.yaml": "just: a value\n",
            "modules/invalid/x.yaml": "apiVersion: v1\nkind: [unclosed\n",
            "modules/empty/.keep": "",
        },
    )


def spec(ref: str, **env: str) -> EngineSpec:
    return EngineSpec(ref=ref, inputs={}, env=dict(env), timeout_seconds=60)


def test_kustomize_renders_offline_into_a_plan(repo: Path) -> None:
    io = RecordingIO()
    plan = KubernetesEngine().plan(repo, spec("modules/web"), io.log, io.cancelled)
    assert plan.engine == "kubernetes" and plan.has_changes
    assert sorted((rc.address, rc.type, tuple(rc.actions)) for rc in plan.resource_changes) == [
        ("ConfigMap/web/web-config", "v1/ConfigMap", ("create",)),
        ("Deployment/web/web", "apps/v1/Deployment", ("create",)),
        ("Namespace/web", "v1/Namespace", ("create",)),
    ]
    assert plan.summary == {"add": 3, "change": 0, "destroy": 0}
    assert "renders 3 objects" in io.text


def test_plain_manifests_are_read_in_name_order(repo: Path) -> None:
    io = RecordingIO()
    plan = KubernetesEngine().plan(repo, spec("modules/plain"), io.log, io.cancelled)
    assert [rc.address for rc in plan.resource_changes] == ["ConfigMap/default/c", "Secret/ops/s"]
    one = KubernetesEngine().plan(repo, spec("modules/plain/b.yaml"), io.log, io.cancelled)
    assert [rc.address for rc in one.resource_changes] == ["Secret/ops/s"]


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("modules/bad-kustomize", r"kubectl kustomize modules/bad-kustomize failed .*missing.yaml"),
        ("modules/not-k8s", "document 1 of modules/not-k8s is not a Kubernetes object"),
        ("modules/invalid", "not valid YAML"),
        ("modules/empty", "no kustomization.yaml and no"),
    ],
)
def test_bad_modules_are_clear_errors(repo: Path, ref: str, why: str) -> None:
    io = RecordingIO()
    with pytest.raises(EngineFailed, match=why):
        KubernetesEngine().plan(repo, spec(ref), io.log, io.cancelled)


def test_list_documents_and_missing_names() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
    assert [o["metadata"]["name"] for o in parse_manifests(text, source="x")] == ["a"]
    with pytest.raises(EngineFailed, match=r"has no metadata\.name"):
        parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", source="x")


def test_apply_without_a_cluster_says_so(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    io = RecordingIO()
    with pytest.raises(
        EngineUnavailable, match=r"needs a Kubernetes cluster, and none is configured.*KUBECONFIG"
    ):
        KubernetesEngine().apply(repo, spec("modules/web"), io.log, io.cancelled)


def test_apply_against_an_unreachable_cluster_says_so(repo: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    io = RecordingIO()
    with pytest.raises(EngineUnavailable, match="cannot reach the Kubernetes API server"):
        KubernetesEngine().apply(repo, spec("modules/web", KUBECONFIG=str(kubeconfig)), io.log, io.cancelled)


def test_missing_kubectl_is_a_clear_error(repo: Path) -> None:
    io = RecordingIO()
    with pytest.raises(EngineUnavailable, match="kubectl not found on agent"):
        KubernetesEngine().plan(repo, spec("modules/web", PATH="/nonexistent"), io.log, io.cancelled)
