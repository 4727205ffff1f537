"""One GitOps sync: fetch the source's commit, find its ConfluxConfig documents, render, publish.

This module is the caller that owns transactions (like a server loop): a git fetch must never hold a
database transaction, and every document is published in a transaction of its own, so a document
that fails (a missing secret, a sandbox violation, content the config center rejects) rolls back only
itself and leaves nothing half-published. Publishing goes through `conflux.service` only, with
`idempotency_key = sha256(commit + path)` and `source = "gitops:<commit>"`: re-running a commit
changes nothing, and a new commit publishes only the documents whose rendered content changed (the
others are compared with the config's latest content and reported `unchanged`).

Rendered content holds secret values; it goes to `conflux.service.publish` and nowhere else. Every
message this module stores or logs passes through `render.mask` with the values of the secrets in
play, and repository URLs through `compose.repo.mask`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy.orm import Session

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose.repo import DEFAULT_MAX_UNPACKED_BYTES, RepoLimits, checkout
from xcloudflow.compose.repo import mask as mask_url
from xcloudflow.conflux import service as conflux
from xcloudflow.conflux.schemas import ConfigOut, ConfigPut, PublishIn, RetentionPolicy
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict, DomainError, Invalid, NotFound
from xcloudflow.gitops import prune, render
from xcloudflow.gitops import service as sources
from xcloudflow.gitops.documents import ConfigDocument, DocumentProblem, scan
from xcloudflow.gitops.schemas import DocumentResult, SourceOut
from xcloudflow.gitops.urls import check_local
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys.keyring import Keyring
from xcloudflow.secrets import service as secret_store
from xcloudflow.settings import LocalRoots

log = logging.getLogger("xcloudflow.gitops")
REPO_MAX_BYTES_SETTING = "XCF_GITOPS_REPO_MAX_BYTES"


@dataclass(frozen=True)
class SyncOptions:
    local_roots: LocalRoots = field(default_factory=lambda: LocalRoots({}))  # per organization
    git_timeout: float = 120.0
    repo_max_bytes: int = DEFAULT_MAX_UNPACKED_BYTES  # unpacked, as git archive streams it


@dataclass(frozen=True)
class Rendered:
    doc: ConfigDocument
    content: str
    masked: str  # the same template rendered with every secret as render.MASK
    secret_values: tuple[str, ...] = field(repr=False)


class DocumentFailure(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Snapshot:
    commit: str
    found: list[ConfigDocument | DocumentProblem]
    problem: str | None  # the whole commit cannot be synced (e.g. `path` is missing)


def idempotency_key(commit: str, path: str) -> str:
    return hashlib.sha256((commit + path).encode()).hexdigest()


def sync_principal(org_id: int, source: str) -> Principal:
    """Who publishes for a source: a synthetic writer named after it (the versions' author)."""
    return Principal(
        user_id=0, user_name=f"gitops:{source}", org_id=org_id, org_name="", role="writer", token_id=0
    )


# ---------------------------------------------------------------- fetching


def _with_credentials(url: str, values: dict[str, str] | None, secret: str) -> str:
    if values is None:
        raise Invalid(
            f"secret {secret!r} (secretRef) does not exist: create it with xcf secret set {secret} username=... password=..."
        )
    username, password = values.get("username"), values.get("password")
    if not password:
        raise Invalid(f"secret {secret!r} (secretRef) has no key 'password' (and 'username')")
    parts = urlsplit(url)
    userinfo = f"{quote(username or 'git', safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


@contextmanager
def snapshot(
    *, db: Database, keyring: Keyring, spec: sources.SourceSpec, ref: str, options: SyncOptions
) -> Iterator[Snapshot]:
    """The source's files at `ref` (raises Invalid with a masked message when it cannot be fetched)."""
    url = spec.url
    hidden: list[str] = []
    local_roots = options.local_roots.of(spec.org_name)
    check_local(url, local_roots)
    if spec.secret_ref:
        with db.read() as session:
            values = secret_store.read_values(
                session=session, keyring=keyring, org_id=spec.org_id, name=spec.secret_ref
            )
        url = _with_credentials(url, values, spec.secret_ref)
        hidden = [v for v in (values or {}).values() if v]
    try:
        limits = RepoLimits(options.repo_max_bytes, REPO_MAX_BYTES_SETTING)
        with checkout(url, ref, local_roots=local_roots, timeout=options.git_timeout, limits=limits) as snap:
            assert snap.commit is not None
            top = snap.root / spec.path if spec.path else snap.root
            if not top.is_dir():
                yield Snapshot(snap.commit, [], f"path {spec.path!r} is not a directory of the repository")
                return
            yield Snapshot(snap.commit, scan(snap.root, spec.path), None)
    except Invalid as exc:
        message = render.mask(mask_url(exc.message), hidden + [quote(v, safe="") for v in hidden])
        raise Invalid(message) from None


# ---------------------------------------------------------------- rendering


def secret_values(
    db: Database, keyring: Keyring, org_id: int, docs: Sequence[ConfigDocument]
) -> dict[str, dict[str, str] | None]:
    names = sorted({d.secrets_ref for d in docs if d.secrets_ref})
    if not names:
        return {}
    with db.read() as session:
        return {
            n: secret_store.read_values(session=session, keyring=keyring, org_id=org_id, name=n)
            for n in names
        }


def render_document(doc: ConfigDocument, secrets: dict[str, dict[str, str] | None]) -> Rendered:
    """Render both ways (real and masked); DocumentFailure with the file line on any error."""
    values: dict[str, str] | None = None
    if doc.secrets_ref is not None:
        values = secrets.get(doc.secrets_ref)
        if values is None:
            raise DocumentFailure(
                f"secret {doc.secrets_ref!r} (spec.secretsRef.name) does not exist: create it with "
                f"`xcf secret set {doc.secrets_ref} KEY=VALUE`",
                doc.secrets_ref_line,
            )
        label = f"secret {doc.secrets_ref!r}"
    else:
        label = "Secrets (the document has no spec.secretsRef)"
    hidden = tuple(v for v in (values or {}).values() if v)
    try:
        content = render.render(doc.template, secrets=values, secrets_label=label, values=doc.values)
        masked = render.render(
            doc.template, secrets=values, secrets_label=label, values=doc.values, masked=True
        )
    except render.RenderError as exc:
        line = doc.template_line + exc.line - 1 if exc.line else doc.template_line
        raise DocumentFailure(render.mask(f"spec.template.content: {exc.message}", hidden), line) from None
    return Rendered(doc=doc, content=content, masked=masked, secret_values=hidden)


# ---------------------------------------------------------------- publishing


def _ensure_config(
    *, session: Session, principal: Principal, ctx: AuditContext, doc: ConfigDocument
) -> ConfigOut | None:
    """Create the config, or update its format/schema when the document changed them; returns the
    config as it was before (None when new)."""
    address = conflux.ConfigAddress(doc.tenant, doc.application, doc.environment, doc.name)
    try:
        existing = conflux.get_config(session=session, org_id=principal.org_id, address=address)
    except NotFound:
        existing = None
    schema = doc.schema if doc.schema is not None else (existing.schema_ if existing else None)
    if existing is None or existing.format != doc.format or existing.schema_ != schema:
        body = ConfigPut(
            format=doc.format,
            schema_=schema,
            retention=RetentionPolicy.model_validate(existing.retention)
            if existing and existing.retention
            else None,
            description=existing.description if existing else doc.description,
        )
        conflux.put_config(session=session, principal=principal, ctx=ctx, address=address, body=body)
    return existing


def _publish_one(
    *,
    db: Database,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    item: Rendered,
    commit: str,
    key: str,
) -> DocumentResult:
    doc = item.doc
    address = conflux.ConfigAddress(doc.tenant, doc.application, doc.environment, doc.name)
    with db.write() as session:
        existing = _ensure_config(session=session, principal=principal, ctx=ctx, doc=doc)
        latest = conflux.latest_content(
            session=session, keyring=keyring, org_id=principal.org_id, address=address
        )
        if latest is not None and latest[1] == item.content:
            is_stable = (
                existing is not None and existing.stable is not None and existing.stable.number == latest[0]
            )
            if is_stable or not doc.stable:
                return DocumentResult(
                    path=doc.key_path,
                    line=doc.line,
                    address=doc.address,
                    result="unchanged",
                    version=latest[0],
                )
        out = conflux.publish(
            session=session,
            keyring=keyring,
            principal=principal,
            ctx=ctx,
            address=address,
            body=PublishIn(
                content=item.content,
                description=doc.description or f"GitOps: {doc.key_path} at {commit[:12]}",
                is_stable=doc.stable,
                idempotency_key=key,
                source=f"gitops:{commit}",
            ),
        )
    return DocumentResult(
        path=doc.key_path,
        line=doc.line,
        address=doc.address,
        result="unchanged" if out.replayed else "published",
        version=out.version.number,
    )


def publish_document(
    *, db: Database, keyring: Keyring, principal: Principal, ctx: AuditContext, item: Rendered, commit: str
) -> DocumentResult:
    """Publish one rendered document in its own transaction; a failure is a `failed` result."""
    doc = item.doc
    key = idempotency_key(commit, doc.key_path)
    try:
        try:
            return _publish_one(
                db=db, keyring=keyring, principal=principal, ctx=ctx, item=item, commit=commit, key=key
            )
        except Conflict as exc:
            if exc.code != "idempotency_conflict":
                raise
            # The same commit rendered differently (a secret changed since): the first key is taken by
            # the old content; a key that also binds the content keeps the publish idempotent.
            content_sha = hashlib.sha256(item.content.encode()).hexdigest()
            key = idempotency_key(commit, f"{doc.key_path}\n{content_sha}")
            return _publish_one(
                db=db, keyring=keyring, principal=principal, ctx=ctx, item=item, commit=commit, key=key
            )
    except DomainError as exc:
        where = (
            f" at {exc.details['path']}"
            if isinstance(exc.details, dict)
            and exc.details.get("path")
            and exc.details["path"] not in exc.message
            else ""
        )
        prefix = "rendered content: " if exc.code == "invalid_content" else ""
        message = render.mask(f"{prefix}{exc.message}{where}", item.secret_values)
        return DocumentResult(
            path=doc.key_path, line=doc.line, address=doc.address, result="failed", message=message
        )


def _failed(problem: DocumentProblem | ConfigDocument, message: str, line: int | None) -> DocumentResult:
    return DocumentResult(
        path=problem.key_path, line=line, address=problem.address, result="failed", message=message
    )


def find_duplicates(found: Sequence[ConfigDocument | DocumentProblem]) -> dict[str, ConfigDocument]:
    """Documents whose address an earlier document already claims -> that earlier document."""
    first: dict[str, ConfigDocument] = {}
    dup: dict[str, ConfigDocument] = {}
    for item in found:
        if isinstance(item, ConfigDocument):
            if item.address in first:
                dup[item.key_path] = first[item.address]
            else:
                first[item.address] = item
    return dup


# ---------------------------------------------------------------- the sync


def sync_source(
    *,
    db: Database,
    keyring: Keyring,
    options: SyncOptions,
    org_id: int,
    name: str,
    force: bool = False,
    trigger: str = "manual",
    request_id: str | None = None,
    now: datetime | None = None,
) -> SourceOut:
    """Fetch, and when the commit is not yet synced (or `force`), publish every document."""
    with db.read() as session:
        spec = sources.spec_of(session=session, org_id=org_id, name=name)
    ctx = AuditContext(actor=f"gitops:{name}", org_id=org_id, request_id=request_id)
    try:
        with snapshot(db=db, keyring=keyring, spec=spec, ref=spec.ref, options=options) as snap:
            started = now or utcnow()
            with db.write() as session:
                sources.record_fetch(session=session, source_id=spec.id, commit=snap.commit, now=started)
                if not force and snap.commit == spec.last_synced_commit:
                    return sources.record_up_to_date(
                        session=session,
                        ctx=ctx,
                        source_id=spec.id,
                        commit=snap.commit,
                        trigger=trigger,
                        now=started,
                    )
            results = _apply(db=db, keyring=keyring, org_id=org_id, name=name, ctx=ctx, snap=snap)
            tracked = (
                None
                if snap.problem is not None
                else prune.reconcile(
                    db=db,
                    principal=sync_principal(org_id, name),
                    ctx=ctx,
                    prune=spec.prune,
                    managed=spec.managed,
                    found=snap.found,
                    results=results,
                )
            )
    except Invalid as exc:
        with db.write() as session:
            sources.record_fetch(
                session=session, source_id=spec.id, commit=None, now=now or utcnow(), error=exc.message
            )
            log.warning("gitops source %s: %s", name, exc.message)
            return sources.show_source(session=session, principal=sync_principal(org_id, name), name=name)
    with db.write() as session:
        out = sources.record_result(
            session=session,
            ctx=ctx,
            source_id=spec.id,
            commit=snap.commit,
            documents=results + (tracked.pruned if tracked else []),
            problem=snap.problem,
            trigger=trigger,
            now=now or utcnow(),
            managed=tracked.managed if tracked else None,
            orphans=tracked.orphans if tracked else None,
        )
    failed = [d for d in results if d.result == "failed"]
    if snap.problem or failed:
        log.warning(
            "gitops source %s at %s: %s",
            name,
            snap.commit[:12],
            snap.problem or f"{len(failed)} documents failed",
        )
    return out


def _apply(
    *, db: Database, keyring: Keyring, org_id: int, name: str, ctx: AuditContext, snap: Snapshot
) -> list[DocumentResult]:
    if snap.problem is not None:
        return []
    principal = sync_principal(org_id, name)
    docs = [d for d in snap.found if isinstance(d, ConfigDocument)]
    secrets = secret_values(db, keyring, org_id, docs)
    duplicates = find_duplicates(snap.found)
    results: list[DocumentResult] = []
    for item in snap.found:
        if isinstance(item, DocumentProblem):
            results.append(_failed(item, item.message, item.line))
            continue
        if item.key_path in duplicates:
            other = duplicates[item.key_path]
            results.append(
                _failed(
                    item, f"config {item.address} is also defined by {other.file}:{other.line}", item.line
                )
            )
            continue
        try:
            rendered = render_document(item, secrets)
        except DocumentFailure as exc:
            results.append(_failed(item, exc.message, exc.line))
            continue
        results.append(
            publish_document(
                db=db, keyring=keyring, principal=principal, ctx=ctx, item=rendered, commit=snap.commit
            )
        )
    return results


def run_due(*, db: Database, keyring: Keyring, options: SyncOptions, now: datetime | None = None) -> int:
    """Sync every source whose interval (or a webhook) made it due; returns how many were synced."""
    with db.write() as session:
        due = sources.claim_due(session=session, now=now or utcnow())
    for org_id, name in due:
        try:
            sync_source(
                db=db, keyring=keyring, options=options, org_id=org_id, name=name, trigger="interval", now=now
            )
        except NotFound:
            continue  # deleted meanwhile
        except Exception:
            log.exception("gitops sync of %s failed", name)
    return len(due)
