"""Hide a run's sensitive values in everything the agent sends back: log lines and the plan JSON.

The server gives the agent every sensitive variable value of the run (the bundle's "sensitive" list)
so the agent can mask them before any byte leaves the machine; the job token is added too, since it
is Terraform's backend password. Nothing here may log or return an unmasked value. In the plan JSON
the values Terraform itself marks sensitive (`sensitive_values`, `before_sensitive`/`after_sensitive`,
sensitive outputs and variables declared `sensitive = true`) are masked as well, whatever they hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"


class Masker:
    """Replaces each occurrence of a secret (and its JSON-escaped form) with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str) or not secret:
                continue
            forms.add(secret)
            escaped = json.dumps(secret)[1:-1]  # how the value appears inside a JSON string
            forms.add(escaped)
            forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        # Longest first, so a secret that contains another one is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in self._forms)) if self._forms else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask_value(self, value: Any) -> Any:
        """A copy of a JSON-like value where every string holding a secret is masked, keys included.

        A number or bool whose JSON text equals a secret (a sensitive `port = 5432`) is masked too.
        """
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(v) for v in value]
        if value is not None and self._pattern is not None and json.dumps(value) in self._forms:
            return MASK
        return value

    def mask_plan(self, plan: dict[str, Any]) -> dict[str, Any]:
        """The `terraform show -json` document with Terraform's sensitive markers and our secrets masked."""
        masked = _mask_marked_plan(plan)
        result: dict[str, Any] = self.mask_value(masked)
        return result


def _apply_marks(value: Any, marks: Any) -> Any:
    """Mask the parts of `value` that a Terraform sensitivity tree (`true` / {k: tree} / [tree]) marks."""
    if marks is True:
        return None if value is None else MASK
    if isinstance(marks, dict) and isinstance(value, dict):
        return {k: _apply_marks(v, marks.get(k)) for k, v in value.items()}
    if isinstance(marks, list) and isinstance(value, list):
        return [_apply_marks(v, marks[i] if i < len(marks) else None) for i, v in enumerate(value)]
    return value


def _mask_module(module: Any) -> Any:
    if not isinstance(module, dict):
        return module
    out = dict(module)
    resources = []
    for res in module.get("resources") or []:
        if isinstance(res, dict) and "values" in res:
            res = {**res, "values": _apply_marks(res["values"], res.get("sensitive_values"))}
        resources.append(res)
    if "resources" in module:
        out["resources"] = resources
    if "child_modules" in module:
        out["child_modules"] = [_mask_module(m) for m in module.get("child_modules") or []]
    return out


def _mask_values_block(block: Any) -> Any:
    """planned_values / prior_state.values: {outputs: {name: {sensitive, value}}, root_module}."""
    if not isinstance(block, dict):
        return block
    out = dict(block)
    outputs = block.get("outputs")
    if isinstance(outputs, dict):
        out["outputs"] = {
            name: ({**o, "value": MASK} if isinstance(o, dict) and o.get("sensitive") and "value" in o else o)
            for name, o in outputs.items()
        }
    if "root_module" in block:
        out["root_module"] = _mask_module(block["root_module"])
    return out


def _mask_change(change: Any) -> Any:
    if not isinstance(change, dict):
        return change
    out = dict(change)
    for side in ("before", "after"):
        if side in change:
            out[side] = _apply_marks(change[side], change.get(f"{side}_sensitive"))
    return out


def _sensitive_variables(plan: dict[str, Any]) -> set[str]:
    config = plan.get("configuration")
    root = config.get("root_module") if isinstance(config, dict) else None
    variables = root.get("variables") if isinstance(root, dict) else None
    if not isinstance(variables, dict):
        return set()
    return {name for name, v in variables.items() if isinstance(v, dict) and v.get("sensitive")}


def _mask_marked_plan(plan: dict[str, Any]) -> dict[str, Any]:
    out = dict(plan)
    sensitive_vars = _sensitive_variables(plan)
    variables = plan.get("variables")
    if isinstance(variables, dict):
        out["variables"] = {
            name: ({**v, "value": MASK} if name in sensitive_vars and isinstance(v, dict) else v)
            for name, v in variables.items()
        }
    if "planned_values" in plan:
        out["planned_values"] = _mask_values_block(plan["planned_values"])
    prior = plan.get("prior_state")
    if isinstance(prior, dict) and "values" in prior:
        out["prior_state"] = {**prior, "values": _mask_values_block(prior["values"])}
    for key in ("resource_changes", "resource_drift"):
        if isinstance(plan.get(key), list):
            out[key] = [
                {**rc, "change": _mask_change(rc.get("change"))} if isinstance(rc, dict) else rc
                for rc in plan[key]
            ]
    if isinstance(plan.get("output_changes"), dict):
        out["output_changes"] = {name: _mask_change(ch) for name, ch in plan["output_changes"].items()}
    return out
