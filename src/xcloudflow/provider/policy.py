"""`conflux_release_policy`: the ordered release rules of a config (seed: `rule { priority, version_id, labels }`).

The resource owns the whole policy: create and update replace every rule with one PUT, destroy empties
it. Rules are named `rule-<priority>` on the server, so priorities must be unique (checked at
`terraform validate`). Read reports rules edited through the API as drift, but keeps the
configuration's order and spelling (`labels` unset vs `{}`) when the server holds the same rules.
HTTP only, like every part of the provider.
"""

from __future__ import annotations

from typing import Any

from tf import types as t
from tf.iface import CreateContext, DeleteContext, ImportContext, ReadContext, UpdateContext
from tf.schema import Attribute, Block, Schema
from tf.utils import Diagnostics

from xcloudflow.provider.blocks import ListNestedBlock
from xcloudflow.provider.client import ConfigAddress, ConfluxApiError
from xcloudflow.provider.resources import ConfluxResource, known, report


def _rule_key(rule: dict[str, Any]) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    labels = rule.get("labels") or {}
    return (int(rule["priority"]), str(rule["version_id"]), tuple(sorted(labels.items())))


def policy_rules(out: dict[str, Any], current: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The `rule` blocks of a PolicyOut; `current`'s order and spelling when they are the same rules."""
    rules: list[dict[str, Any]] = [
        {
            "priority": int(r["priority"]),
            "version_id": str(r["version_id"]),
            "labels": dict(r.get("labels") or {}),
        }
        for r in out.get("rules") or []
    ]
    if current is not None and sorted(map(_rule_key, current)) == sorted(map(_rule_key, rules)):
        return current
    rules.sort(key=lambda r: -int(r["priority"]))
    return rules


class ReleasePolicyResource(ConfluxResource):
    @classmethod
    def get_name(cls) -> str:
        return "release_policy"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=1,
            description=(
                "The release rules of a config (all of them: this resource owns the policy). The highest "
                "priority rule whose labels match a client wins; no match falls back to the stable version."
            ),
            attributes=[Attribute("config_id", t.String(), required=True, requires_replace=True)],
            block_types=[
                ListNestedBlock(
                    "rule",
                    Block(
                        attributes=[
                            Attribute(
                                "priority",
                                t.Number(),
                                required=True,
                                description="Higher wins; unique per policy.",
                            ),
                            Attribute("version_id", t.String(), required=True),
                            Attribute(
                                "labels",
                                t.Map(t.String()),
                                optional=True,
                                description='Client labels to match; "*" means present with any value.',
                            ),
                        ]
                    ),
                )
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: dict[str, Any]) -> None:
        super().validate(diags, type_name, config)
        rules: list[dict[str, Any]] | None = config.get("rule")
        if rules is None or not known(rules):
            return
        seen: dict[Any, int] = {}
        for i, rule in enumerate(rules):
            priority: Any = rule.get("priority")
            if not known(priority):
                continue
            if int(priority) != priority:
                diags.add_error(
                    f"Invalid priority {priority!r}", "Use a whole number.", path=["rule", (i,), "priority"]
                )
            if priority in seen:
                diags.add_error(
                    f"Two rules have priority {priority}",
                    f"Rules {seen[priority]} and {i} share a priority; each rule's priority must be unique "
                    "(it orders the rules and names them rule-<priority>).",
                    path=["rule", (i,), "priority"],
                )
            seen[priority] = i

    @staticmethod
    def _rules_in(planned: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": f"rule-{int(r['priority'])}",
                "priority": int(r["priority"]),
                "version_id": str(r["version_id"]),
                "labels": dict(r.get("labels") or {}),
            }
            for r in planned.get("rule") or []
        ]

    def _put(self, diags: Diagnostics, action: str, planned: dict[str, Any]) -> dict[str, Any] | None:
        client = self.client(diags)
        if client is None:
            return None
        config_id = str(planned["config_id"])
        try:
            config = client.config_by_id(config_id)
            if config is None:
                diags.add_error(f"No config with id {config_id!r}", "", path=["config_id"])
                return None
            out = client.put_policy(ConfigAddress.of(config), self._rules_in(planned))
        except ConfluxApiError as exc:
            report(diags, f"{action} the release policy of config {config_id}", exc)
            return None
        return {"config_id": config_id, "rule": policy_rules(out, planned.get("rule") or [])}

    def create(self, ctx: CreateContext, planned: dict[str, Any]) -> dict[str, Any] | None:
        return self._put(ctx.diagnostics, "Creating", planned)

    def update(
        self, ctx: UpdateContext, current: dict[str, Any], planned: dict[str, Any]
    ) -> dict[str, Any] | None:
        return self._put(ctx.diagnostics, "Updating", planned) or current

    def read(self, ctx: ReadContext, current: dict[str, Any]) -> dict[str, Any] | None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return current
        try:
            config = client.config_by_id(str(current["config_id"]))
        except ConfluxApiError as exc:
            report(ctx.diagnostics, "Reading release policy", exc)
            return current
        if config is None:
            return None
        return {**current, "rule": policy_rules(config.get("policy") or {}, current.get("rule"))}

    def delete(self, ctx: DeleteContext, current: dict[str, Any]) -> None:
        client = self.client(ctx.diagnostics)
        if client is None:
            return
        try:
            config = client.config_by_id(str(current["config_id"]))
            if config is not None:
                client.put_policy(ConfigAddress.of(config), [])
        except ConfluxApiError as exc:
            report(ctx.diagnostics, "Clearing the release policy", exc)

    def import_(self, ctx: ImportContext, id: str) -> dict[str, Any] | None:
        config = self.config_for_import(
            ctx, id, what="release policy", hint="Import a release policy by its config's UUID."
        )
        if config is None:
            return None
        return {"config_id": str(config["id"]), "rule": policy_rules(config.get("policy") or {}, None)}
