"""A ChangeSet document rendered as Markdown fit to paste as a pull-request comment (seed 001 section 3:
"a normalized Plan/Diff output, JSON + Markdown rendering").

The comment must stay readable and under GitHub's 65,536-character limit whatever the plan: a summary
table of every node first, then one collapsible section per node with changes, policy messages or an
error; long lists are cut with "... and N more", and the whole text is cut at `MAX_CHARS` with a note.
Input is the JSON document only (`ChangeSet.document`), never a database row. Everything from the
repository or a plan is escaped so a resource name cannot break the table or inject markup.
"""

from __future__ import annotations

from typing import Any

MAX_CHARS = 60_000
MAX_CHANGES_PER_NODE = 50
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<=", "no-op": " "}


def escape(text: Any) -> str:
    """Plain text for a Markdown table cell or line: no pipes, no HTML, no line breaks."""
    value = "" if text is None else str(text)
    for char, replacement in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "'")):
        value = value.replace(char, replacement)
    return " ".join(value.split())


def _action(actions: list[str]) -> str:
    if "delete" in actions and "create" in actions:
        return "replace"
    for name in ("delete", "create", "update", "read"):
        if name in actions:
            return name
    return "no-op"


def _counts(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "-"
    return f"+{summary.get('add', 0)} ~{summary.get('change', 0)} -{summary.get('destroy', 0)}"


def _approval(node: dict[str, Any]) -> str:
    approval = node.get("approval")
    if not approval or not approval.get("required"):
        return "-"
    decision = approval.get("decision")
    window = f" (window {escape(approval['window'])})" if approval.get("window") else ""
    if decision:
        return f"{escape(decision)} by {escape(approval.get('approved_by'))}{window}"
    return f"required{window}"


def _policy_cell(outcomes: list[dict[str, Any]]) -> str:
    deny = sum(len(o.get("deny") or []) for o in outcomes)
    warn = sum(len(o.get("warn") or []) for o in outcomes)
    blocking = any(o.get("enforcement") == "mandatory" and o.get("deny") for o in outcomes)
    if not deny and not warn:
        return "pass" if outcomes else "-"
    parts = []
    if deny:
        parts.append(f"{deny} deny" + (" (blocking)" if blocking else ""))
    if warn:
        parts.append(f"{warn} warn")
    return ", ".join(parts)


def _node_details(node: dict[str, Any]) -> list[str]:
    plan = node.get("plan") or {}
    changes = [c for c in plan.get("resource_changes") or [] if _action(c.get("actions") or []) != "no-op"]
    outcomes = node.get("policy") or []
    messages = [
        (kind, o, message) for o in outcomes for kind in ("deny", "warn") for message in o.get(kind) or []
    ]
    if not changes and not messages and not node.get("error"):
        return []
    lines = [
        f"<details><summary><b>{escape(node.get('key'))}</b> ({escape(node.get('engine'))}, "
        f"{escape(node.get('layer'))}): {_counts(plan.get('summary'))}</summary>",
        "",
    ]
    if node.get("error"):
        lines += [f"**Error:** {escape(node['error'])}", ""]
    for kind, outcome, message in messages:
        level = "DENY" if kind == "deny" else "warn"
        enforcement = escape(outcome.get("enforcement"))
        lines.append(f"- **{level}** [{escape(outcome.get('set'))}, {enforcement}] {escape(message)}")
    if messages:
        lines.append("")
    if changes:
        lines.append("```diff")
        for change in changes[:MAX_CHANGES_PER_NODE]:
            action = _action(change.get("actions") or [])
            address = " ".join(str(change.get("address", "")).split())
            lines.append(f"{SYMBOLS[action]} {address} ({action})".replace("```", "'''"))
        if len(changes) > MAX_CHANGES_PER_NODE:
            lines.append(f"# ... and {len(changes) - MAX_CHANGES_PER_NODE} more")
        lines += ["```", ""]
    lines += ["</details>", ""]
    return lines


def changeset_markdown(doc: dict[str, Any]) -> str:
    """The ChangeSet document (see docs/compose.md) as a pull-request comment."""
    summary = doc.get("summary") or {}
    policy = doc.get("policy") or {}
    commit = str(doc.get("commit") or "")[:12] or "working tree"
    title = f"### XCloudFlow ChangeSet `{escape(str(doc.get('id', ''))[:8])}` for **{escape(doc.get('environment'))}**"
    lines = [
        title,
        "",
        f"Repository {escape(doc.get('repo'))}"
        + (f" ref {escape(doc.get('ref'))}" if doc.get("ref") else "")
        + f" at commit {escape(commit)}; kind {escape(doc.get('kind'))}; status **{escape(doc.get('status'))}**.",
        "",
        f"**Plan:** {summary.get('add', 0)} to add, {summary.get('change', 0)} to change, "
        f"{summary.get('destroy', 0)} to destroy, in {summary.get('with_changes', 0)} of "
        f"{summary.get('nodes', len(doc.get('nodes') or []))} nodes.",
        "",
    ]
    override = policy.get("override")
    if policy.get("blocking") and not override:
        lines += ["**Policy:** blocked by a mandatory policy (see the denials below).", ""]
    elif override:
        lines += [
            f"**Policy:** a mandatory failure was overridden by {escape(override.get('by'))}: "
            f"{escape(override.get('reason'))}",
            "",
        ]
    nodes = doc.get("nodes") or []
    if nodes:
        lines += [
            "| # | node | layer | engine | changes | policy | approval | status |",
            "|---:|---|---|---|---|---|---|---|",
        ]
        for index, node in enumerate(nodes, 1):
            plan = node.get("plan") or {}
            lines.append(
                f"| {index} | {escape(node.get('key'))} | {escape(node.get('layer'))} | "
                f"{escape(node.get('engine'))} | {_counts(plan.get('summary')) if plan else '-'} | "
                f"{_policy_cell(node.get('policy') or [])} | {_approval(node)} | {escape(node.get('status'))} |"
            )
        lines.append("")
    for node in nodes:
        lines += _node_details(node)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > MAX_CHARS:
        cut = text.rfind("\n", 0, MAX_CHARS - 200)
        text = text[:cut] + "\n\n_(truncated: the full plan is in the ChangeSet's JSON document)_\n"
        if text.count("```") % 2:
            text = text.replace("\n\n_(truncated", "\n```\n\n_(truncated", 1)
    return text
