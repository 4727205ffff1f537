"""Retention of config versions: which versions a policy of counts and/or days lets go.

A policy is `{"strategy": "AND"|"OR", "rules": [{"type": "count"|"days", "keep": N}]}` (the seed's
`retention_policy { strategy, rules { type, keep } }`). A count rule keeps the N newest versions, a
days rule those created within the last N days. AND: a version goes only when EVERY rule lets it go
(kept while any rule keeps it); OR: it goes when ANY rule lets it go. Nacos lost gray versions from its
day-based history (#12217); here the caller passes `protected` (the stable version and every version
a policy rule references), and the newest version is never deleted either.

Pure: the clock is an argument and nothing is deleted here; the server's retention job does that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from xcloudflow.errors import Invalid

STRATEGIES = ("AND", "OR")
RULE_TYPES = ("count", "days")


@dataclass(frozen=True)
class VersionInfo:
    id: str
    number: int
    created_at: datetime


def check_policy(policy: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The normalized policy (strategy upper-case, `keep` an int), None for no policy; Invalid on a
    bad shape. `{"rules": []}` or a missing policy means keep everything."""
    if policy is None:
        return None
    if not isinstance(policy, Mapping):
        raise Invalid("retention policy must be an object {strategy, rules}")
    unknown = sorted(set(policy) - {"strategy", "rules"})
    if unknown:
        raise Invalid(f"retention policy: unknown field {unknown[0]!r} (strategy, rules)")
    strategy = policy.get("strategy", "AND")
    if not isinstance(strategy, str) or strategy.upper() not in STRATEGIES:
        raise Invalid(f"retention policy: strategy must be AND or OR, got {strategy!r}")
    rules = policy.get("rules") or []
    if not isinstance(rules, list | tuple):
        raise Invalid("retention policy: rules must be a list of {type, keep}")
    normalized: list[dict[str, Any]] = []
    for index, rule in enumerate(rules):
        where = f"retention policy: rules[{index}]"
        if not isinstance(rule, Mapping):
            raise Invalid(f"{where} must be an object {{type, keep}}")
        unknown = sorted(set(rule) - {"type", "keep"})
        if unknown:
            raise Invalid(f"{where}: unknown field {unknown[0]!r} (type, keep)")
        kind = rule.get("type")
        if kind not in RULE_TYPES:
            raise Invalid(f"{where}: type must be count or days, got {kind!r}")
        keep = rule.get("keep")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise Invalid(f"{where}: keep must be an integer of at least 1, got {keep!r}")
        normalized.append({"type": kind, "keep": keep})
    return {"strategy": strategy.upper(), "rules": normalized}


def _kept_by(rule: Mapping[str, Any], versions: Sequence[VersionInfo], now: datetime) -> set[str]:
    if rule["type"] == "count":
        newest = sorted(versions, key=lambda v: v.number, reverse=True)[: int(rule["keep"])]
        return {v.id for v in newest}
    cutoff = now - timedelta(days=int(rule["keep"]))
    return {v.id for v in versions if v.created_at >= cutoff}


def to_delete(
    versions: Sequence[VersionInfo],
    policy: Mapping[str, Any] | None,
    *,
    protected: set[str],
    now: datetime,
) -> list[str]:
    """Ids of the versions the policy lets go, oldest first; never a protected one, never the newest."""
    checked = check_policy(policy)
    if not checked or not checked["rules"] or not versions:
        return []
    kept_sets = [_kept_by(rule, versions, now) for rule in checked["rules"]]
    newest = max(versions, key=lambda v: v.number).id
    doomed: list[VersionInfo] = []
    for version in versions:
        if version.id in protected or version.id == newest:
            continue
        released = [version.id not in kept for kept in kept_sets]
        if all(released) if checked["strategy"] == "AND" else any(released):
            doomed.append(version)
    return [v.id for v in sorted(doomed, key=lambda v: v.number)]
