"""The Markdown rendering of a ChangeSet document (a pull-request comment)."""

from __future__ import annotations

from typing import Any

from xcloudflow.compose.render import MAX_CHARS, changeset_markdown


def _node(key: str, layer: str, **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "key": key,
        "composition": f"compositions/{key.split('/')[0]}",
        "module": key.split("/")[1],
        "ref": "modules/x",
        "engine": "terraform",
        "layer": layer,
        "depends_on": [],
        "route": {},
        "status": "planned",
        "plan": None,
        "policy": [],
        "approval": None,
        "snapshot": None,
        "error": None,
    }
    node.update(extra)
    return node


def _plan(*changes: tuple[str, list[str]]) -> dict[str, Any]:
    add = sum("create" in a for _, a in changes)
    change = sum(a == ["update"] for _, a in changes)
    destroy = sum("delete" in a for _, a in changes)
    return {
        "engine": "terraform",
        "has_changes": bool(changes),
        "summary": {"add": add, "change": change, "destroy": destroy},
        "resource_changes": [
            {"address": addr, "type": addr.split(".")[0], "actions": a} for addr, a in changes
        ],
    }


def document() -> dict[str, Any]:
    return {
        "id": "0b6f5c1e-1111-2222-3333-444455556666",
        "environment": "prod",
        "repo": "https://git.example.com/platform.git",
        "ref": "main",
        "commit": "a" * 40,
        "kind": "apply",
        "status": "blocked",
        "created_by": "admin",
        "created_at": "2025-01-01T00:00:00Z",
        "summary": {"add": 2, "change": 1, "destroy": 1, "nodes": 3, "with_changes": 2},
        "policy": {"blocking": True, "override": None},
        "nodes": [
            _node(
                "network/network",
                "Foundation",
                status="awaiting_approval",
                plan=_plan(("terraform_data.vpc", ["delete", "create"]), ("terraform_data.old", ["delete"])),
                policy=[
                    {
                        "set": "security",
                        "enforcement": "mandatory",
                        "file": "policies/security/protect_foundation.rego",
                        "package": "xcf.security.foundation",
                        "deny": ["node network/network: deleting terraform_data.old in the Foundation layer"],
                        "warn": [],
                    }
                ],
                approval={"required": True, "window": "weeknights", "decision": None},
            ),
            _node(
                "database/database",
                "Platform",
                plan=_plan(("terraform_data.db", ["update"]), ("terraform_data.migration", ["create"])),
                policy=[
                    {
                        "set": "cost",
                        "enforcement": "advisory",
                        "file": "policies/cost/budget.rego",
                        "package": "xcf.cost.budget",
                        "deny": [],
                        "warn": ["a <b>pipe | here</b>"],
                    }
                ],
                approval={"required": True, "decision": "approved", "approved_by": "alice"},
            ),
            _node("web/web", "Application", plan=_plan()),
        ],
    }


def test_markdown_comment() -> None:
    text = changeset_markdown(document())
    assert text.startswith("### XCloudFlow ChangeSet `0b6f5c1e` for **prod**\n")
    assert "at commit aaaaaaaaaaaa" in text and "status **blocked**" in text
    assert "**Plan:** 2 to add, 1 to change, 1 to destroy, in 2 of 3 nodes." in text
    assert "**Policy:** blocked by a mandatory policy" in text
    assert (
        "| 1 | network/network | Foundation | terraform | +1 ~0 -2 | 1 deny (blocking) | required (window weeknights) | awaiting_approval |"
        in text
    )
    assert (
        "| 2 | database/database | Platform | terraform | +1 ~1 -0 | 1 warn | approved by alice | planned |"
        in text
    )
    assert "| 3 | web/web | Application | terraform | +0 ~0 -0 | - | - | planned |" in text
    assert "-/+ terraform_data.vpc (replace)" in text and "- terraform_data.old (delete)" in text
    assert "~ terraform_data.db (update)" in text and "+ terraform_data.migration (create)" in text
    assert "- **DENY** [security, mandatory] node network/network: deleting terraform_data.old" in text
    # text from plans and policies cannot inject markup or break the table
    assert "- **warn** [cost, advisory] a &lt;b&gt;pipe \\| here&lt;/b&gt;" in text
    assert "<details><summary><b>web/web</b>" not in text  # nothing to show for a node without changes
    assert text.count("```") % 2 == 0


def test_override_and_error() -> None:
    doc = document()
    doc["policy"] = {"blocking": True, "override": {"by": "admin", "reason": "planned migration", "at": "x"}}
    doc["nodes"][2]["error"] = "terraform apply failed:\nexit 3"
    doc["nodes"][2]["status"] = "failed"
    text = changeset_markdown(doc)
    assert "**Policy:** a mandatory failure was overridden by admin: planned migration" in text
    assert "**Error:** terraform apply failed: exit 3" in text


def test_huge_plans_are_cut_to_fit_a_comment() -> None:
    doc = document()
    many = [(f"terraform_data.r{i}", ["create"]) for i in range(400)]
    doc["nodes"] = [_node(f"n{i}/m", "Platform", plan=_plan(*many)) for i in range(60)]
    text = changeset_markdown(doc)
    assert len(text) <= MAX_CHARS
    assert "# ... and 350 more" in text
    assert "(truncated: the full plan is in the ChangeSet's JSON document)" in text
    assert text.count("```") % 2 == 0


def test_empty_changeset() -> None:
    text = changeset_markdown({"id": "x", "environment": "dev", "nodes": [], "summary": {}})
    assert "0 to add, 0 to change, 0 to destroy, in 0 of 0 nodes" in text
    assert "working tree" in text
