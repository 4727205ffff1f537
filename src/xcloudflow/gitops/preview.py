"""Dry run: what a sync of a source would publish, as data and as Markdown for a pull request.

Nothing is written: the repository is read at the requested ref, documents are rendered, content is
checked against its format and the config's (or the document's) schema with Conflux's pure format
functions, and compared with each config's latest content. Secrets are masked on both sides of every
diff: the new side is the template rendered with masked secrets; the old side has the current secret
values replaced, and a line whose new form holds a mask and whose old form matches it around the mask
is shown masked too (so a rotated secret's old value never shows).
"""

from __future__ import annotations

import difflib
import re

from xcloudflow.compose.render import escape
from xcloudflow.conflux import formats, textdiff
from xcloudflow.conflux import service as conflux
from xcloudflow.db import Database
from xcloudflow.errors import DomainError, NotFound
from xcloudflow.gitops import prune, render
from xcloudflow.gitops import service as sources
from xcloudflow.gitops.documents import ConfigDocument, DocumentProblem
from xcloudflow.gitops.schemas import PreviewDocument, PreviewOut
from xcloudflow.gitops.sync import (
    DocumentFailure,
    Rendered,
    SyncOptions,
    find_duplicates,
    render_document,
    secret_values,
    snapshot,
    sync_principal,
)
from xcloudflow.keys.keyring import Keyring

MAX_MARKDOWN_CHARS = 60_000


def align_masked(old: str, new_masked: str) -> str:
    """`old` with each line that matches a masked line of `new_masked` around its masks replaced by
    that masked line."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new_masked.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        block = old_lines[i1:i2]
        if tag == "replace":
            masked = [line for line in new_lines[j1:j2] if render.MASK in line]
            block = [_match_any(line, masked) for line in block]
        out.extend(block)
    return "".join(out)


def _match_any(line: str, candidates: list[str]) -> str:
    for candidate in candidates:
        pattern = "(?s:.+?)".join(re.escape(part) for part in candidate.split(render.MASK))
        if re.fullmatch(pattern, line):
            return candidate
    return line


def _check_content(item: Rendered, schema_text: str | None) -> None:
    schema = formats.check_schema(schema_text) if schema_text else None
    formats.validate(item.content, formats.check_format(item.doc.format), schema)


def preview(
    *, db: Database, keyring: Keyring, options: SyncOptions, org_id: int, name: str, ref: str | None = None
) -> PreviewOut:
    with db.read() as session:
        spec = sources.spec_of(session=session, org_id=org_id, name=name)
    wanted = ref or spec.ref
    documents: list[PreviewDocument] = []
    with snapshot(db=db, keyring=keyring, spec=spec, ref=wanted, options=options) as snap:
        if snap.problem is not None:
            return _out(name, wanted, snap.commit, [], snap.problem)
        docs = [d for d in snap.found if isinstance(d, ConfigDocument)]
        secrets = secret_values(db, keyring, org_id, docs)
        duplicates = find_duplicates(snap.found)
        for item in snap.found:
            if isinstance(item, DocumentProblem):
                documents.append(
                    PreviewDocument(
                        path=item.key_path,
                        line=item.line,
                        address=item.address,
                        action="failed",
                        message=item.message,
                    )
                )
                continue
            if item.key_path in duplicates:
                other = duplicates[item.key_path]
                documents.append(
                    PreviewDocument(
                        path=item.key_path,
                        line=item.line,
                        address=item.address,
                        action="failed",
                        message=f"config {item.address} is also defined by {other.file}:{other.line}",
                    )
                )
                continue
            try:
                rendered = render_document(item, secrets)
            except DocumentFailure as exc:
                documents.append(
                    PreviewDocument(
                        path=item.key_path,
                        line=exc.line,
                        address=item.address,
                        action="failed",
                        message=exc.message,
                    )
                )
                continue
            documents.append(_compare(db, keyring, org_id, rendered))
        documents += _removed(db, spec, org_id, snap.found, documents)
    return _out(name, wanted, snap.commit, documents, None)


def _removed(
    db: Database,
    spec: sources.SourceSpec,
    org_id: int,
    found: list[ConfigDocument | DocumentProblem],
    documents: list[PreviewDocument],
) -> list[PreviewDocument]:
    """The source's configs this ref no longer defines: deleted by the sync (prune on and every
    document fine) or left as orphans."""
    failing = sum(1 for d in documents if d.action == "failed")
    out: list[PreviewDocument] = []
    gone = prune.removed(
        db=db, principal=sync_principal(org_id, spec.name), managed=spec.managed, found=found
    )
    for address, path, version in gone:
        if spec.prune and not failing:
            action, message = "delete", "removed from Git: the sync deletes this config (prune)"
        else:
            why = f"{failing} document(s) fail" if spec.prune else "spec.prune is off"
            action, message = "orphan", f"removed from Git: left in Conflux, requires pruning ({why})"
        out.append(
            PreviewDocument(path=path, address=address, action=action, from_version=version, message=message)
        )
    return out


def _compare(db: Database, keyring: Keyring, org_id: int, item: Rendered) -> PreviewDocument:
    doc = item.doc
    address = conflux.ConfigAddress(doc.tenant, doc.application, doc.environment, doc.name)
    base = {"path": doc.key_path, "line": doc.line, "address": doc.address, "stable": doc.stable}
    with db.read() as session:
        try:
            config = conflux.get_config(session=session, org_id=org_id, address=address)
        except NotFound:
            config = None
        latest = (
            conflux.latest_content(session=session, keyring=keyring, org_id=org_id, address=address)
            if config is not None
            else None
        )
    try:
        if config is not None and config.format != doc.format:
            return PreviewDocument(
                **base,
                action="failed",
                message=f"format changes from {config.format} to {doc.format}: a config with versions keeps its format",
            )
        _check_content(item, doc.schema if doc.schema is not None else (config.schema_ if config else None))
    except DomainError as exc:
        path = exc.details.get("path") if isinstance(exc.details, dict) else None
        message = exc.message + (f" at {path}" if path and path not in exc.message else "")
        return PreviewDocument(**base, action="failed", message=render.mask(message, item.secret_values))
    if latest is None:
        diff = textdiff.unified("", item.masked, old_label="/dev/null", new_label=f"{doc.address} (new)")
        return PreviewDocument(**base, action="create", diff=diff)
    number, content = latest
    is_stable = config is not None and config.stable is not None and config.stable.number == number
    if content == item.content and (is_stable or not doc.stable):
        return PreviewDocument(**base, action="unchanged", from_version=number)
    old = align_masked(render.mask(content, item.secret_values), item.masked)
    diff = textdiff.unified(
        old, item.masked, old_label=f"{doc.address} v{number}", new_label=f"{doc.address} (new)"
    )
    note: str | None = None
    if not diff:
        note = "only masked secret values change" if content != item.content else "same content, made stable"
    return PreviewDocument(**base, action="update", from_version=number, diff=diff or None, message=note)


def _out(
    name: str, ref: str, commit: str, documents: list[PreviewDocument], problem: str | None
) -> PreviewOut:
    return PreviewOut(
        source=name,
        ref=ref,
        commit=commit,
        documents=documents,
        markdown=markdown(name, ref, commit, documents, problem),
    )


def markdown(
    name: str, ref: str, commit: str, documents: list[PreviewDocument], problem: str | None = None
) -> str:
    """The preview as a pull-request comment: a summary table, then one section per change."""
    lines = [f"### GitOps preview: source `{escape(name)}` at `{commit[:12]}` ({escape(ref)})", ""]
    if problem is not None:
        lines += [f"**Cannot sync this commit:** {escape(problem)}", ""]
        return "\n".join(lines)
    if not documents:
        lines += ["No ConfluxConfig documents found.", ""]
        return "\n".join(lines)
    actions = ("create", "update", "unchanged", "failed", "delete", "orphan")
    counts = {a: sum(1 for d in documents if d.action == a) for a in actions}
    summary = (
        f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged, "
        f"{counts['failed']} failing"
    )
    if counts["delete"] or counts["orphan"]:
        summary += f", {counts['delete']} to delete, {counts['orphan']} orphaned"
    lines += [
        summary,
        "",
        "| file | config | action | release |",
        "| --- | --- | --- | --- |",
    ]
    for d in documents:
        where = f"{d.path}:{d.line}" if d.line else d.path
        action = (
            d.action
            if d.from_version is None or d.action == "unchanged"
            else f"{d.action} (from v{d.from_version})"
        )
        if d.action in ("unchanged", "delete", "orphan") and d.from_version is not None:
            action = f"{d.action} (v{d.from_version})"
        quiet = ("unchanged", "failed", "delete", "orphan")
        release = "-" if d.action in quiet else ("stable" if d.stable else "not stable")
        lines.append(f"| {escape(where)} | {escape(d.address or '-')} | {escape(action)} | {release} |")
    lines.append("")
    for d in documents:
        if d.action == "failed":
            lines += [
                f"#### :x: `{escape(d.path)}`{':' + str(d.line) if d.line else ''}",
                "",
                escape(d.message),
                "",
            ]
        elif d.action in ("delete", "orphan"):
            lines += [f"#### `{escape(d.address)}` ({d.action})", "", escape(d.message), ""]
        elif d.action in ("create", "update"):
            lines += [f"#### `{escape(d.address)}` ({d.action})", ""]
            if d.message:
                lines += [escape(d.message), ""]
            if d.diff:
                fence = "````" if "```" in d.diff else "```"
                lines += [f"{fence}diff", d.diff.rstrip("\n"), fence, ""]
    text = "\n".join(lines)
    if len(text) > MAX_MARKDOWN_CHARS:
        text = text[:MAX_MARKDOWN_CHARS] + "\n\n_(preview cut at 60,000 characters)_\n"
    return text
