"""Release-policy rules: which version a client with given labels (and client id) receives.

Rules are tried by priority, highest first, ties by name ascending; the first that matches wins and
no match falls back to the stable version. A rule matches when every label selector matches (`*`:
the label is present with any value; otherwise equal) and, for a percentage rule, the client's stable
bucket is below the percentage: `int(sha256(f"{config_id}:{client_id}")[:8], 16) % 100`, so a client
stays in or out of a canary as it grows (AppConfig-style gradual rollout), and different configs
bucket the same client independently. A client without a client id never matches a percentage rule.

Pure and deterministic: never read the clock, random numbers or the database here; the server,
the provider and the tests must all compute the same answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xcloudflow.errors import Invalid

LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ANY = "*"


@dataclass(frozen=True)
class Rule:
    name: str
    priority: int
    version_id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    percentage: int | None = None


def bucket(config_id: str, client_id: str) -> int:
    """The client's stable bucket 0..99 for this config."""
    digest = hashlib.sha256(f"{config_id}:{client_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


def matches(rule: Rule, labels: Mapping[str, str], client_id: str | None, config_id: str) -> bool:
    for key, wanted in rule.labels.items():
        if key not in labels:
            return False
        if wanted != ANY and labels[key] != wanted:
            return False
    if rule.percentage is None:
        return True
    if not client_id:
        return False
    return bucket(config_id, client_id) < rule.percentage


def ordered(rules: Sequence[Rule]) -> list[Rule]:
    """The evaluation order: priority descending, then name ascending."""
    return sorted(rules, key=lambda r: (-r.priority, r.name))


def resolve(
    rules: Sequence[Rule],
    stable_version_id: str | None,
    labels: Mapping[str, str],
    client_id: str | None,
    config_id: str,
) -> tuple[str | None, str | None]:
    """(version id, name of the matching rule or None for the stable fallback); (None, None) when
    nothing matches and nothing is stable (the caller answers 404 "nothing released")."""
    for rule in ordered(rules):
        if matches(rule, labels, client_id, config_id):
            return rule.version_id, rule.name
    return stable_version_id, None


def parse_labels(text: str) -> dict[str, str]:
    """`"env=prod,region=eu"` -> `{"env": "prod", "region": "eu"}`; an empty text is no labels."""
    labels: dict[str, str] = {}
    if not text or not text.strip():
        return labels
    for position, item in enumerate(text.split(","), start=1):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise Invalid(f"labels: item {position} {item.strip()!r} is not key=value")
        if not key:
            raise Invalid(f"labels: item {position} {item.strip()!r} has no key")
        if not LABEL_KEY.match(key):
            raise Invalid(f"labels: invalid key {key!r} (letters, digits, '._/-', at most 63 characters)")
        if key in labels:
            raise Invalid(f"labels: key {key!r} given twice")
        labels[key] = value
    return labels


def check_rules(rules: Sequence[Rule]) -> None:
    """Invalid naming the rule and what is wrong: duplicate or malformed names, a percentage outside
    0..100, invalid label keys or values, an empty version id."""
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule.name, str) or not RULE_NAME.match(rule.name):
            raise Invalid(
                f"rule name {rule.name!r} is invalid (letters, digits, '._-', starting with a letter or digit)"
            )
        if rule.name in seen:
            raise Invalid(f"rule {rule.name!r} is named twice (rule names must be unique in a policy)")
        seen.add(rule.name)
        if isinstance(rule.priority, bool) or not isinstance(rule.priority, int):
            raise Invalid(f"rule {rule.name!r}: priority must be an integer, got {rule.priority!r}")
        if not rule.version_id:
            raise Invalid(f"rule {rule.name!r}: no version")
        if rule.percentage is not None and (
            isinstance(rule.percentage, bool)
            or not isinstance(rule.percentage, int)
            or not 0 <= rule.percentage <= 100
        ):
            raise Invalid(
                f"rule {rule.name!r}: percentage must be an integer from 0 to 100, got {rule.percentage!r}"
            )
        for key, value in rule.labels.items():
            if not isinstance(key, str) or not LABEL_KEY.match(key):
                raise Invalid(
                    f"rule {rule.name!r}: invalid label key {key!r} (letters, digits, '._/-', at most 63 characters)"
                )
            if not isinstance(value, str) or not value:
                raise Invalid(
                    f"rule {rule.name!r}: label {key!r} needs a value (a string, or '*' for any value)"
                )
