"""Resolution rules: examples, and hypothesis properties against a reference evaluation written here."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcloudflow.conflux.rules import Rule, bucket, check_rules, matches, parse_labels, resolve
from xcloudflow.errors import Invalid

CONFIG = "0b6f8f52-1c1e-4c4e-9d43-6f0d3c1c2a10"


# ------------------------------------------------------------------------------ reference evaluation


def reference_resolve(
    rules: Sequence[Rule],
    stable: str | None,
    labels: Mapping[str, str],
    client_id: str | None,
    config_id: str,
) -> tuple[str | None, str | None]:
    """The contract read literally, written as plainly as possible and independently of the module:
    try every rule in order of (highest priority, then smallest name) and return the first match."""
    remaining = list(rules)
    while remaining:
        best = remaining[0]
        for rule in remaining[1:]:
            if rule.priority > best.priority or (rule.priority == best.priority and rule.name < best.name):
                best = rule
        remaining.remove(best)
        selectors_ok = True
        for key in best.labels:
            present = key in labels
            if not present or (best.labels[key] != "*" and best.labels[key] != labels[key]):
                selectors_ok = False
        percentage_ok = True
        if best.percentage is not None:
            if client_id is None or client_id == "":
                percentage_ok = False
            else:
                digest = hashlib.sha256((config_id + ":" + client_id).encode("utf-8")).hexdigest()
                percentage_ok = int(digest[0:8], 16) % 100 < best.percentage
        if selectors_ok and percentage_ok:
            return best.version_id, best.name
    if stable is None:
        return None, None
    return stable, None


KEYS = ["env", "region", "tier", "zone"]
VALUES = ["prod", "staging", "eu", "us", "a", "*"]

label_values = st.sampled_from(VALUES[:-1])
client_labels = st.dictionaries(st.sampled_from(KEYS), label_values, max_size=4)
selectors = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)


@st.composite
def rule_lists(draw: st.DrawFn) -> list[Rule]:
    names = draw(st.lists(st.sampled_from([f"r{i}" for i in range(12)]), unique=True, max_size=8))
    return [
        Rule(
            name=name,
            priority=draw(st.integers(min_value=-3, max_value=3)),  # few values: many ties
            version_id=draw(st.sampled_from(["v1", "v2", "v3", "v4"])),
            labels=draw(selectors),
            percentage=draw(st.none() | st.integers(min_value=0, max_value=100)),
        )
        for name in names
    ]


client_ids = st.none() | st.just("") | st.text(min_size=1, max_size=20)
stables = st.none() | st.sampled_from(["s1", "s2"])
config_ids = st.just(CONFIG) | st.uuids().map(str)


@settings(max_examples=600, deadline=None)
@given(rule_lists(), stables, client_labels, client_ids, config_ids)
def test_resolve_agrees_with_the_reference(
    rules: list[Rule], stable: str | None, labels: dict[str, str], client_id: str | None, config_id: str
) -> None:
    check_rules(rules)
    assert resolve(rules, stable, labels, client_id, config_id) == reference_resolve(
        rules, stable, labels, client_id, config_id
    )


@settings(max_examples=300, deadline=None)
@given(rule_lists(), stables, client_labels, client_ids, st.randoms(use_true_random=False))
def test_resolve_does_not_depend_on_the_order_rules_are_given(
    rules: list[Rule], stable: str | None, labels: dict[str, str], client_id: str | None, rnd: object
) -> None:
    shuffled = list(rules)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert resolve(shuffled, stable, labels, client_id, CONFIG) == resolve(
        rules, stable, labels, client_id, CONFIG
    )


@settings(max_examples=300, deadline=None)
@given(rule_lists(), stables, client_labels, client_ids)
def test_the_winner_matches_and_no_earlier_rule_does(
    rules: list[Rule], stable: str | None, labels: dict[str, str], client_id: str | None
) -> None:
    version, name = resolve(rules, stable, labels, client_id, CONFIG)
    by_name = {r.name: r for r in rules}
    earlier = [
        r
        for r in rules
        if name is None or (-r.priority, r.name) < (-by_name[name].priority, by_name[name].name)
    ]
    assert not any(matches(r, labels, client_id, CONFIG) for r in earlier)
    if name is None:
        assert version == stable
    else:
        assert matches(by_name[name], labels, client_id, CONFIG)
        assert version == by_name[name].version_id


@settings(max_examples=300, deadline=None)
@given(selectors, client_labels, client_ids, st.integers(min_value=0, max_value=100))
def test_a_larger_percentage_never_drops_a_client(
    selector: dict[str, str], labels: dict[str, str], client_id: str | None, pct: int
) -> None:
    small = Rule("canary", 1, "v2", selector, pct)
    grown = Rule("canary", 1, "v2", selector, min(100, pct + 10))
    if matches(small, labels, client_id, CONFIG):
        assert matches(grown, labels, client_id, CONFIG)


@settings(max_examples=200, deadline=None)
@given(client_labels, st.text(min_size=1, max_size=30))
def test_percentage_bounds(labels: dict[str, str], client_id: str) -> None:
    assert not matches(Rule("none", 1, "v", {}, 0), labels, client_id, CONFIG)
    assert matches(Rule("all", 1, "v", {}, 100), labels, client_id, CONFIG)
    assert 0 <= bucket(CONFIG, client_id) < 100


# ---------------------------------------------------------------------------------------- examples


def test_examples_from_the_contract() -> None:
    rules = [
        Rule("beta-users", 10, "v3", {"group": "beta"}),
        Rule("eu-canary", 5, "v2", {"region": "eu", "env": "*"}, 50),
        Rule("everyone-b", 0, "v1", {}),
        Rule("everyone-a", 0, "v9", {}),
    ]
    assert resolve(rules, "stable", {"group": "beta"}, None, CONFIG) == ("v3", "beta-users")
    assert resolve(rules, "stable", {}, None, CONFIG) == ("v9", "everyone-a")  # tie: name ascending
    assert resolve(rules[:2], "stable", {"region": "eu"}, "c", CONFIG) == ("stable", None)  # env missing
    assert resolve(rules[:2], None, {}, None, CONFIG) == (None, None)
    in_bucket = next(f"client-{i}" for i in range(1000) if bucket(CONFIG, f"client-{i}") < 50)
    out_bucket = next(f"client-{i}" for i in range(1000) if bucket(CONFIG, f"client-{i}") >= 50)
    eu = {"region": "eu", "env": "prod"}
    assert resolve(rules[:2], "s", eu, in_bucket, CONFIG) == ("v2", "eu-canary")
    assert resolve(rules[:2], "s", eu, out_bucket, CONFIG) == ("s", None)
    assert resolve(rules[:2], "s", eu, None, CONFIG) == ("s", None)  # no client id: no percentage rule
    assert resolve(rules[:2], "s", eu, "", CONFIG) == ("s", None)


def test_wildcard_needs_the_label_present() -> None:
    rule = Rule("any-env", 1, "v", {"env": "*"})
    assert matches(rule, {"env": ""}, None, CONFIG)
    assert matches(rule, {"env": "x", "other": "y"}, None, CONFIG)
    assert not matches(rule, {"other": "x"}, None, CONFIG)


def test_bucket_is_the_documented_hash() -> None:
    expected = int(hashlib.sha256(f"{CONFIG}:host-1".encode()).hexdigest()[:8], 16) % 100
    assert bucket(CONFIG, "host-1") == expected
    assert bucket(CONFIG, "host-1") == bucket(CONFIG, "host-1")


def test_bucket_is_roughly_uniform() -> None:
    n = 20_000
    counts = Counter(bucket(CONFIG, f"client-{i}") for i in range(n))
    assert set(counts) == set(range(100))
    expected = n / 100
    chi2 = sum((counts[b] - expected) ** 2 / expected for b in range(100))
    # 99 degrees of freedom: the 99.9th percentile of chi-square is about 148.
    assert chi2 < 148, chi2
    # A 10 % rollout reaches about 10 % of clients.
    share = sum(counts[b] for b in range(10)) / n
    assert 0.09 < share < 0.11


def test_configs_bucket_a_client_independently() -> None:
    clients = [f"client-{i}" for i in range(2000)]
    other = str(uuid.UUID(int=1))
    both = sum(1 for c in clients if bucket(CONFIG, c) < 10 and bucket(other, c) < 10)
    # Independent 10 % samples overlap on about 1 %, not 10 %.
    assert both < 60


# ------------------------------------------------------------------------------------------- labels


def test_parse_labels() -> None:
    assert parse_labels("") == {}
    assert parse_labels("  ") == {}
    assert parse_labels("env=prod") == {"env": "prod"}
    assert parse_labels("env = prod , region=eu-west-1,empty=") == {
        "env": "prod",
        "region": "eu-west-1",
        "empty": "",
    }
    assert parse_labels("url=a=b") == {"url": "a=b"}
    assert parse_labels("app.kubernetes.io/name=x") == {"app.kubernetes.io/name": "x"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("env", "labels: item 1 'env' is not key=value"),
        ("env=prod,=v", "labels: item 2 '=v' has no key"),
        ("env=prod,env=dev", "labels: key 'env' given twice"),
        ("env=prod,,a=b", "labels: item 2 '' is not key=value"),
        ("-bad=1", "labels: invalid key '-bad' (letters, digits, '._/-', at most 63 characters)"),
    ],
)
def test_parse_labels_errors(text: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_labels(text)
    assert caught.value.message == message


# ------------------------------------------------------------------------------------------- checks


def test_check_rules_accepts_a_valid_policy() -> None:
    check_rules([])
    check_rules(
        [Rule("a", 1, "v1", {"env": "*"}, 0), Rule("b", 1, "v2", {}, 100), Rule("rule-5", 5, "v1", {})]
    )


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [Rule("a", 1, "v", {}), Rule("a", 2, "w", {})],
            "rule 'a' is named twice (rule names must be unique in a policy)",
        ),
        ([Rule("a", 1, "v", {}, 101)], "rule 'a': percentage must be an integer from 0 to 100, got 101"),
        ([Rule("a", 1, "v", {}, -1)], "rule 'a': percentage must be an integer from 0 to 100, got -1"),
        (
            [Rule("a", 1, "v", {"bad key": "x"})],
            "rule 'a': invalid label key 'bad key' (letters, digits, '._/-', at most 63 characters)",
        ),
        (
            [Rule("a", 1, "v", {"env": ""})],
            "rule 'a': label 'env' needs a value (a string, or '*' for any value)",
        ),
        ([Rule("a", 1, "", {})], "rule 'a': no version"),
        (
            [Rule("", 1, "v", {})],
            "rule name '' is invalid (letters, digits, '._-', starting with a letter or digit)",
        ),
    ],
)
def test_check_rules_errors(rules: list[Rule], message: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_rules(rules)
    assert caught.value.message == message
