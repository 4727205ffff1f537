"""Kubernetes modules through kubectl: render offline to plan, server-side apply to apply.

Plan renders the module without a cluster: `kubectl kustomize <dir>` when the directory holds a
kustomization, else the directory's *.yaml / *.yml manifests (or the one file the ref names)
concatenated in name order. Each object becomes one ResourceChange ("<Kind>/<namespace>/<name>" for
namespaced objects, "<Kind>/<name>" for the cluster-scoped kinds below) whose action "create" means
"will be applied": without a cluster nothing can say whether the object exists already.

Apply pipes the rendered manifests to `kubectl apply --server-side --field-manager=xcloudflow -f -`.
That needs a cluster: when no kubeconfig is configured (KUBECONFIG in the module's env or the
agent's, ~/.kube/config, or the in-cluster service account) the error says so before kubectl runs,
and a cluster that cannot be reached is reported as such. This module never reads cluster
credentials itself; kubectl does.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import yaml

from xcloudflow.engines.base import (
    EngineCanceled,
    EngineFailed,
    EngineSpec,
    EngineUnavailable,
    LogSink,
    NodePlan,
    ResourceChange,
    module_path,
    run_process,
    sandbox_for,
    tool_environment,
)

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
FIELD_MANAGER = "xcloudflow"
# Kinds that live outside namespaces (the common built-in ones; a CRD's scope is only known to a cluster).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "CSIDriver",
        "VolumeAttachment",
    }
)
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "unable to connect to the server",
    "failed to download openapi",
    "the server could not find the requested resource",
    "dial tcp",
)


def kubectl_path(env: dict[str, str]) -> str:
    found = shutil.which("kubectl", path=env.get("PATH"))
    if found is None:
        raise EngineUnavailable(
            f"kubectl not found on agent {os.uname().nodename}; install it or route this module to another engine"
        )
    return found


def render(workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> str:
    """The module's manifests as one multi-document YAML text (kustomize output or the files joined)."""
    target = module_path(workdir, spec.ref)
    if target.is_dir() and any((target / name).is_file() for name in KUSTOMIZATION_FILES):
        env = tool_environment(spec.env)
        done = run_process(
            [kubectl_path(env), "kustomize", str(target)],
            cwd=workdir,
            env=env,
            log=log,
            cancel=cancel,
            timeout_seconds=spec.timeout_seconds,
            capture_stdout=True,
            sandbox=sandbox_for(workdir, spec),
        )
        if done.canceled:
            raise EngineCanceled("canceled during kubectl kustomize")
        if done.exit_code != 0 or done.timed_out:
            raise EngineFailed(
                f"kubectl kustomize {spec.ref} failed (exit code {done.exit_code}): {done.tail() or 'no output'}",
                details={"module": spec.ref},
            )
        return done.stdout
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    else:
        files = [target]
    if not files:
        raise EngineFailed(
            f"kubernetes module {spec.ref!r} has no kustomization.yaml and no *.yaml manifests"
        )
    parts = []
    for path in files:
        text = path.read_text()
        parts.append(text if text.endswith("\n") else text + "\n")
    return "---\n".join(parts)


def parse_manifests(text: str, *, source: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text; a document that is not a Kubernetes object is an error."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (document line {mark.line + 1})" if mark is not None else ""
        raise EngineFailed(f"the manifests of {source} are not valid YAML{where}: {exc}") from exc
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            candidates = doc["items"]
        else:
            candidates = [doc]
        for obj in candidates:
            if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
                raise EngineFailed(
                    f"document {index} of {source} is not a Kubernetes object (it needs apiVersion and kind)"
                )
            name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
            if not name:
                raise EngineFailed(f"document {index} of {source} ({obj['kind']}) has no metadata.name")
            objects.append(obj)
    return objects


def object_change(obj: dict[str, Any]) -> ResourceChange:
    kind = str(obj["kind"])
    meta = obj.get("metadata") or {}
    name = str(meta["name"])
    if kind in CLUSTER_SCOPED:
        address = f"{kind}/{name}"
    else:
        address = f"{kind}/{meta.get('namespace') or 'default'}/{name}"
    return ResourceChange(
        address=address,
        type=f"{obj['apiVersion']}/{kind}",
        actions=["create"],
        detail={"apply": "server-side", "namespaced": kind not in CLUSTER_SCOPED},
    )


def agent_kubeconfigs() -> list[Path]:
    """The kubeconfig files the agent itself is configured with (its KUBECONFIG, ~/.kube/config).

    Only these are made visible in the sandbox: a path a module's env names is the workspace's
    word, and binding it would show user code whatever file it named.
    """
    named = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [p for p in [*named, Path.home() / ".kube" / "config"] if p.is_file()]


def _has_kubeconfig(env: dict[str, str]) -> bool:
    if env.get("KUBECONFIG"):
        return any(Path(p).expanduser().is_file() for p in env["KUBECONFIG"].split(os.pathsep) if p)
    if env.get("KUBERNETES_SERVICE_HOST"):
        return True
    home = env.get("HOME")
    return home is not None and home != "" and (Path(home) / ".kube" / "config").is_file()


class KubernetesEngine:
    name = "kubernetes"

    def plan(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan:
        text = render(workdir, spec, log, cancel)
        changes = [object_change(obj) for obj in parse_manifests(text, source=spec.ref)]
        log(f"xcf: {spec.ref} renders {len(changes)} objects to apply")
        return NodePlan.from_changes(self.name, changes)

    def apply(self, workdir: Path, spec: EngineSpec, log: LogSink, cancel: threading.Event) -> NodePlan:
        text = render(workdir, spec, log, cancel)
        changes = [object_change(obj) for obj in parse_manifests(text, source=spec.ref)]
        env = tool_environment(spec.env)
        if not _has_kubeconfig(env):
            raise EngineUnavailable(
                f"kubectl apply of {spec.ref} needs a Kubernetes cluster, and none is configured on agent "
                f"{os.uname().nodename}: set KUBECONFIG (in the environment's or module's env) to a kubeconfig "
                "file, or run the agent inside the cluster"
            )
        argv = [kubectl_path(env), "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-"]
        log(f"xcf: kubectl apply --server-side ({len(changes)} objects)")
        done = run_process(
            argv,
            cwd=workdir,
            env=env,
            log=log,
            cancel=cancel,
            timeout_seconds=spec.timeout_seconds,
            stdin=text.encode(),
            sandbox=sandbox_for(workdir, spec, readonly=agent_kubeconfigs()),
        )
        if done.canceled:
            raise EngineCanceled("canceled during kubectl apply")
        if done.exit_code != 0 or done.timed_out:
            output = "\n".join(done.lines).lower()
            if any(marker in output for marker in _UNREACHABLE):
                raise EngineUnavailable(
                    f"kubectl apply of {spec.ref} cannot reach the Kubernetes API server: {done.tail()}",
                    details={"module": spec.ref},
                )
            raise EngineFailed(
                f"kubectl apply of {spec.ref} failed (exit code {done.exit_code}): {done.tail() or 'no output'}",
                details={"module": spec.ref},
            )
        return NodePlan.from_changes(self.name, changes)
