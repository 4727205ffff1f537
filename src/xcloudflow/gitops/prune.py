"""Configs a source published whose document left Git: report them (orphans) and, when the source's
`prune` is on, delete them, with Argo CD's semantics.

- Tracking: a source manages the configs it published or found up to date (`SyncRecord.managed`,
  address -> file). A managed config is this source's only while its newest version was published by
  the source (author `gitops:<source>`, the synthetic writer of `sync.sync_principal`): a version
  published since by a person, the provider or another source takes it over, and it is then neither
  reported nor deleted (Argo CD never prunes a resource whose tracking label names another app).
- Prune is off by default. Off, an orphan stays in Conflux and in `status.orphans` ("OutOfSync,
  requires pruning") until its document comes back, someone deletes it, or prune is turned on.
- Prune runs last and only after a sync where every document synced: a commit with a failed or
  unparseable document prunes nothing (its configs may be among the "missing" ones), as Argo CD
  prunes only once the other resources applied.
- Deleting is `conflux.service.delete_config` (the config with its versions, releases and policy; its
  clients get 404 and watchers a `delete` notification), each in a transaction of its own that checks
  ownership again just before deleting, audited by Conflux as `conflux.config.delete` by
  `gitops:<source>` (the sync's audit row lists the pruned addresses). Conflux exposes no lock to
  take before that check: on PostgreSQL a version published by someone else in the instant between
  the check and the delete's row lock goes with the config (SQLite serializes the two writes).

A config that no longer exists simply leaves the tracking. Nothing here fetches or renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.conflux import service as conflux
from xcloudflow.db import Database
from xcloudflow.errors import NotFound
from xcloudflow.gitops.documents import ConfigDocument, DocumentProblem
from xcloudflow.gitops.schemas import DocumentResult, OrphanedConfig
from xcloudflow.iam.schemas import Principal


@dataclass
class Outcome:
    pruned: list[DocumentResult] = field(default_factory=list)
    orphans: list[OrphanedConfig] = field(default_factory=list)
    managed: dict[str, str] = field(default_factory=dict)


def _address(text: str) -> conflux.ConfigAddress:
    tenant, application, environment, name = text.split("/", 3)
    return conflux.ConfigAddress(tenant, application, environment, name)


def _owned_version(session: Session, principal: Principal, address: str) -> int | None:
    """The config's newest version number when this source published it; None when the config is
    gone, has no version or was taken over."""
    try:
        newest = conflux.list_versions(
            session=session, org_id=principal.org_id, address=_address(address), limit=1
        ).items
    except NotFound:
        return None
    if not newest or newest[0].author != principal.user_name:
        return None
    return newest[0].number


def removed(
    *,
    db: Database,
    principal: Principal,
    managed: dict[str, str],
    found: Sequence[ConfigDocument | DocumentProblem],
) -> list[tuple[str, str, int]]:
    """(address, file, newest version) of the configs this source still owns that no document of
    `found` defines: what a sync would report or prune (the dry run shows them)."""
    in_git = {item.address for item in found if item.address}
    gone: list[tuple[str, str, int]] = []
    for address, path in sorted(managed.items()):
        if address in in_git:
            continue
        with db.read() as session:
            version = _owned_version(session, principal, address)
        if version is not None:
            gone.append((address, path, version))
    return gone


def reconcile(
    *,
    db: Database,
    principal: Principal,
    ctx: AuditContext,
    prune: bool,
    managed: dict[str, str],
    found: Sequence[ConfigDocument | DocumentProblem],
    results: Sequence[DocumentResult],
) -> Outcome:
    """After the documents of a commit were applied: what the source now manages, which of its configs
    are orphans, and (prune on, every document synced) those deleted."""
    in_git = {item.address for item in found if item.address}
    outcome = Outcome(
        managed={a: p for a, p in managed.items() if a in in_git}
        | {r.address: r.path for r in results if r.address and r.result in ("published", "unchanged")}
    )
    failed = sum(1 for r in results if r.result == "failed")
    for address, path in sorted(managed.items()):
        if address in in_git:
            continue
        if prune and not failed:
            with db.write() as session:
                version = _owned_version(session, principal, address)
                if version is not None:
                    conflux.delete_config(
                        session=session, principal=principal, ctx=ctx, address=_address(address)
                    )
                    outcome.pruned.append(
                        DocumentResult(
                            path=path,
                            address=address,
                            result="pruned",
                            version=version,
                            message="removed from Git: config deleted (prune)",
                        )
                    )
            continue
        with db.read() as session:
            version = _owned_version(session, principal, address)
        if version is None:
            continue  # deleted by hand or taken over: no longer this source's
        why = (
            f"not pruned: {failed} document{'s' if failed != 1 else ''} of this commit failed"
            if prune
            else "spec.prune is off"
        )
        outcome.orphans.append(
            OrphanedConfig(
                address=address,
                path=path,
                version=version,
                message=f"config {address} is no longer in Git: requires pruning ({why})",
            )
        )
        outcome.managed[address] = path
    return outcome
