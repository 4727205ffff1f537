"""From a repository at one commit to a stored ChangeSet whose nodes are being planned.

Everything that can be wrong with the input is found here, before any row is written: the repository
is read at one commit, loaded and validated, the environment's DAG is built (cycles, unknown
compositions, unknown environments), and every Rego policy is compiled. Only then are the ChangeSet,
its nodes and the repository snapshot stored, and each node's plan started (a Terraform run or an
engine job), all in the caller's transaction: bad input leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose import job_nodes, tf_nodes
from xcloudflow.compose.events import ACTOR
from xcloudflow.compose.graph import PlanGraph, build_graph
from xcloudflow.compose.loader import Repository, load_repository
from xcloudflow.compose.models import ComposeChangeSet, ComposeNode
from xcloudflow.compose.repo import RepoLimits, archive, checkout, mask
from xcloudflow.compose.schemas import ChangeSetCreate
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Invalid
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys.keyring import Keyring
from xcloudflow.policy.rego import PolicyBundle, PolicySetConfig

DEFAULT_PROJECT = "compose"
DEFAULT_CONCURRENCY = 4


def _spec(model: Any) -> dict[str, Any]:
    """A DSL model as the JSON its YAML spells (camelCase keys); `spec` when the model has one."""
    data: dict[str, Any] = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    spec = data.get("spec")
    return spec if isinstance(spec, dict) else data


def policy_sets(config: dict[str, Any]) -> list[PolicySetConfig]:
    return [
        PolicySetConfig(name=s["name"], path=s["path"], enforcement=s.get("enforcement", "advisory"))
        for s in config.get("policySets") or []
    ]


def _context(repo: Repository, graph: PlanGraph, environment: str) -> dict[str, Any]:
    config = _spec(repo.config)
    env = repo.environments[environment]
    env_spec = _spec(env)
    used = {node.composition for node in graph.nodes.values()}
    defaults = config.get("defaults") or {}
    return {
        "project": (config.get("stateBackend") or {}).get("project") or DEFAULT_PROJECT,
        "pool": env_spec.get("pool") or defaults.get("pool") or "embedded",
        "concurrency": int(defaults.get("concurrency") or DEFAULT_CONCURRENCY),
        "protected": bool(env_spec.get("protected")),
        "approvers": list(config.get("approvers") or []),
        "allow_self_approval": bool(config.get("allowSelfApproval")),
        "change_windows": config.get("changeWindows") or {},
        "budget": config.get("budget") or {},
        "costs": config.get("costs") or {},
        "policy_sets": [s.__dict__ for s in policy_sets(config)],
        "policy_files": dict(repo.policy_files),
        "compositions": {ref: _spec(repo.compositions[ref]) for ref in sorted(used)},
        "composition_names": {ref: repo.compositions[ref].metadata.name for ref in sorted(used)},
        "environment": env.model_dump(by_alias=True, mode="json", exclude_none=True),
    }


def _check_runnable(repo: Repository, graph: PlanGraph) -> None:
    native = [n for n in graph.nodes.values() if n.engine == "native"]
    if native:
        node = native[0]
        raise Invalid(
            f"{repo.sources.get(node.composition, node.composition)}: module {node.module} is routed to the "
            "native engine, which has no runner in this release; set `engine:` to terraform, pulumi, ansible "
            "or kubernetes",
            details={"nodes": [n.key for n in native]},
        )


def needs_approval(route: dict[str, Any], protected: bool) -> bool:
    approval = route.get("approval")
    return approval == "required" or (approval == "environment" and protected)


@dataclass(frozen=True)
class ReadRepository:
    """A repository read at one commit and checked, ready to become a ChangeSet."""

    graph: PlanGraph
    context: dict[str, Any]
    bundle: bytes
    commit: str | None
    source: str  # credentials masked


def read_repository(
    *,
    principal: Principal,
    body: ChangeSetCreate,
    local_roots: list[Path],
    max_bytes: int,
    git_timeout: float,
    repo_limits: RepoLimits = RepoLimits(),
) -> ReadRepository:
    """Fetch, load, validate, route, order and compile the policies: everything that can be wrong with
    the input, found before a database transaction is opened (a git fetch can take a while)."""
    iam.require(principal, "writer", action="planning a ChangeSet")
    with checkout(
        body.repo, body.ref, local_roots=local_roots, timeout=git_timeout, limits=repo_limits
    ) as snapshot:
        repo = load_repository(snapshot.root)
        graph = build_graph(repo, body.environment)
        _check_runnable(repo, graph)
        context = _context(repo, graph, body.environment)
        PolicyBundle.compile(repo.policy_files, policy_sets(_spec(repo.config)))  # a bad policy stops here
        bundle = archive(snapshot.root, max_bytes=max_bytes)
        return ReadRepository(graph, context, bundle, snapshot.commit, mask(snapshot.source))


def create_changeset(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    body: ChangeSetCreate,
    read: ReadRepository,
) -> ComposeChangeSet:
    """Store the ChangeSet and its nodes, and start every node's plan, in the caller's transaction."""
    iam.require(principal, "writer", action="planning a ChangeSet")
    graph, context, bundle, commit, source = read.graph, read.context, read.bundle, read.commit, read.source
    cs = ComposeChangeSet(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        environment=body.environment,
        kind="apply",
        status="planning",
        repo=source,
        ref=body.ref,
        commit=commit,
        apply_requested=body.apply,
        context=context,
        bundle=bundle,
        bundle_sha256=hashlib.sha256(bundle).hexdigest(),
        created_at=utcnow(),
        created_by=principal.user_name,
    )
    session.add(cs)
    session.flush()
    for seq, key in enumerate(graph.order):
        node = graph.nodes[key]
        route = node.route.to_json()
        session.add(
            ComposeNode(
                changeset_id=cs.id,
                org_id=cs.org_id,
                environment=cs.environment,
                seq=seq,
                key=key,
                composition=node.composition,
                module=node.module,
                ref=node.ref,
                engine=node.engine,
                layer=node.layer,
                depends_on=list(node.depends_on),
                route=route,
                inputs=dict(node.inputs),
                action="apply",
                status="pending",
                approval_required=needs_approval(route, context["protected"]),
                change_window=route.get("change_window"),
                attempts=0,
            )
        )
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="compose.changeset.create",
        resource=f"changeset/{cs.id}",
        details={
            "environment": cs.environment,
            "commit": commit,
            "nodes": len(graph.order),
            "apply": body.apply,
        },
    )
    for row in nodes_of(session, cs.id):
        start_plan(session=session, keyring=keyring, cs=cs, node=row)
    return cs


def nodes_of(session: Session, changeset_id: uuid.UUID) -> list[ComposeNode]:
    return list(
        session.scalars(
            select(ComposeNode).where(ComposeNode.changeset_id == changeset_id).order_by(ComposeNode.seq)
        )
    )


def node_workspace(cs: ComposeChangeSet, node: ComposeNode) -> str:
    names = cs.context.get("composition_names") or {}
    comp_name = names.get(node.composition) or node.key.split("/", 1)[0]
    project, name = tf_nodes.workspace_ref(
        cs.context.get("project") or DEFAULT_PROJECT, cs.environment, comp_name, node.module
    )
    return f"{project}/{name}"


def start_plan(*, session: Session, keyring: Keyring, cs: ComposeChangeSet, node: ComposeNode) -> None:
    """Queue the node's plan: a Terraform run that stops at `planned`, or a `compose.plan` job."""
    pool = cs.context.get("pool") or "embedded"
    node.status = "planning"
    node.started_at = utcnow()
    if node.engine == "terraform":
        workspace = node_workspace(cs, node)
        project, name = tf_nodes.split(workspace)
        tf_nodes.ensure_workspace(
            session=session,
            org_id=cs.org_id,
            actor=ACTOR,
            project=project,
            name=name,
            pool=pool,
            working_directory=node.ref,
        )
        assert cs.bundle is not None
        tf_nodes.upload_if_changed(
            session=session,
            keyring=keyring,
            org_id=cs.org_id,
            actor=ACTOR,
            workspace=workspace,
            data=tf_nodes.code_archive(cs.bundle, node.ref, node.inputs),
            message=f"changeset {cs.id} at {cs.commit or 'working tree'}",
        )
        node.workspace = workspace
        node.run_id = tf_nodes.start_run(
            session=session,
            keyring=keyring,
            org_id=cs.org_id,
            actor=ACTOR,
            workspace=workspace,
            kind="plan_and_apply",
            auto_apply=False,
            message=f"xcf compose: changeset {cs.id} node {node.key}",
        )
    else:
        node.job_id = job_nodes.start(
            session=session,
            org_id=cs.org_id,
            kind=job_nodes.PLAN_KIND,
            pool=pool,
            changeset=cs.id,
            node=node.key,
            payload=job_nodes.engine_payload(engine=node.engine, ref=node.ref, inputs=node.inputs),
        )
    session.flush()
