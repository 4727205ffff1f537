"""Retention: AND/OR of count and days rules; protected and newest versions always stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcloudflow.conflux.retention import VersionInfo, check_policy, to_delete
from xcloudflow.errors import Invalid

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def history(ages_in_days: list[int]) -> list[VersionInfo]:
    """Versions v1..vN created the given number of days before NOW (oldest first)."""
    return [
        VersionInfo(id=f"v{n}", number=n, created_at=NOW - timedelta(days=age))
        for n, age in enumerate(ages_in_days, start=1)
    ]


def policy(strategy: str, **keep: int) -> dict[str, Any]:
    return {"strategy": strategy, "rules": [{"type": t, "keep": k} for t, k in keep.items()]}


# Ten versions, one per ten days: v1 is 90 days old, v10 was published today.
TEN = history([90, 80, 70, 60, 50, 40, 30, 20, 10, 0])


def test_no_policy_keeps_everything() -> None:
    assert to_delete(TEN, None, protected=set(), now=NOW) == []
    assert to_delete(TEN, {"strategy": "AND", "rules": []}, protected=set(), now=NOW) == []
    assert to_delete([], policy("OR", count=1), protected=set(), now=NOW) == []


def test_count_alone() -> None:
    assert to_delete(TEN, policy("AND", count=3), protected=set(), now=NOW) == [f"v{n}" for n in range(1, 8)]


def test_days_alone() -> None:
    # Kept: created within 35 days (v7 at 30 days .. v10).
    assert to_delete(TEN, policy("OR", days=35), protected=set(), now=NOW) == [f"v{n}" for n in range(1, 7)]


def test_days_boundary_is_kept() -> None:
    assert to_delete(TEN, policy("AND", days=30), protected=set(), now=NOW) == [f"v{n}" for n in range(1, 7)]


def test_and_keeps_what_any_rule_keeps() -> None:
    # count 3 keeps v8..v10; days 55 keeps v5..v10 (v5 is 50 days old): AND deletes only what both let go.
    assert to_delete(TEN, policy("AND", count=3, days=55), protected=set(), now=NOW) == [
        "v1",
        "v2",
        "v3",
        "v4",
    ]
    # count 7 keeps v4..v10; days 25 keeps v8..v10.
    assert to_delete(TEN, policy("AND", count=7, days=25), protected=set(), now=NOW) == ["v1", "v2", "v3"]


def test_or_deletes_what_any_rule_lets_go() -> None:
    assert to_delete(TEN, policy("OR", count=3, days=55), protected=set(), now=NOW) == [
        f"v{n}" for n in range(1, 8)
    ]
    assert to_delete(TEN, policy("OR", count=7, days=25), protected=set(), now=NOW) == [
        f"v{n}" for n in range(1, 8)
    ]


def test_protected_versions_survive() -> None:
    # v2 is stable and v5 a canary referenced by a rule: neither goes, whatever the policy says.
    doomed = to_delete(TEN, policy("OR", count=1, days=1), protected={"v2", "v5"}, now=NOW)
    assert doomed == ["v1", "v3", "v4", "v6", "v7", "v8", "v9"]


def test_the_newest_version_survives_even_when_old() -> None:
    old = history([400, 300, 200])
    assert to_delete(old, policy("AND", days=7), protected=set(), now=NOW) == ["v1", "v2"]


def test_numbers_not_list_order_decide_newest_and_count() -> None:
    shuffled = [TEN[4], TEN[9], TEN[0], TEN[7], TEN[2], TEN[8], TEN[1], TEN[3], TEN[6], TEN[5]]
    assert to_delete(shuffled, policy("AND", count=3), protected=set(), now=NOW) == [
        f"v{n}" for n in range(1, 8)
    ]


def test_gaps_in_numbers_after_earlier_deletions() -> None:
    versions = [VersionInfo(f"v{n}", n, NOW - timedelta(days=100 - n)) for n in (3, 7, 8, 12, 20)]
    assert to_delete(versions, policy("AND", count=2), protected=set(), now=NOW) == ["v3", "v7", "v8"]


ages = (
    st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=25)
    .map(sorted)
    .map(lambda a: a[::-1])
)
rule_sets = st.lists(
    st.tuples(st.sampled_from(["count", "days"]), st.integers(min_value=1, max_value=30)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(ages, rule_sets, st.sampled_from(["AND", "OR"]), st.sets(st.integers(min_value=1, max_value=25)))
def test_properties(
    age_list: list[int], rules: list[tuple[str, int]], strategy: str, protected_numbers: set[int]
) -> None:
    versions = history(age_list)
    protected = {f"v{n}" for n in protected_numbers}
    pol = {"strategy": strategy, "rules": [{"type": t, "keep": k} for t, k in rules]}
    doomed = to_delete(versions, pol, protected=protected, now=NOW)
    newest = f"v{len(versions)}"
    assert newest not in doomed
    assert not set(doomed) & protected
    assert doomed == sorted(doomed, key=lambda i: int(i[1:]))
    for v in versions:
        if v.id in protected or v.id == newest:
            continue
        verdicts = []
        for t, k in rules:
            if t == "count":
                verdicts.append(v.number <= len(versions) - k)
            else:
                verdicts.append(v.created_at < NOW - timedelta(days=k))
        expected = all(verdicts) if strategy == "AND" else any(verdicts)
        assert (v.id in doomed) == expected
    # OR never keeps more than AND.
    other = "OR" if strategy == "AND" else "AND"
    other_doomed = to_delete(versions, {**pol, "strategy": other}, protected=protected, now=NOW)
    and_doomed, or_doomed = (doomed, other_doomed) if strategy == "AND" else (other_doomed, doomed)
    assert set(and_doomed) <= set(or_doomed)


# ------------------------------------------------------------------------------------------- checks


def test_check_policy_normalizes() -> None:
    assert check_policy(None) is None
    assert check_policy({"strategy": "or", "rules": [{"type": "days", "keep": 180}]}) == {
        "strategy": "OR",
        "rules": [{"type": "days", "keep": 180}],
    }
    assert check_policy({"rules": [{"type": "count", "keep": 50}]}) == {
        "strategy": "AND",
        "rules": [{"type": "count", "keep": 50}],
    }
    assert check_policy({"strategy": "AND", "rules": []}) == {"strategy": "AND", "rules": []}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "retention policy must be an object {strategy, rules}"),
        ({"strategy": "XOR", "rules": []}, "retention policy: strategy must be AND or OR, got 'XOR'"),
        ({"strategy": "AND", "rules": {}, "x": 1}, "retention policy: unknown field 'x' (strategy, rules)"),
        ({"strategy": "AND", "rules": "count"}, "retention policy: rules must be a list of {type, keep}"),
        ({"rules": [5]}, "retention policy: rules[0] must be an object {type, keep}"),
        (
            {"rules": [{"type": "weeks", "keep": 1}]},
            "retention policy: rules[0]: type must be count or days, got 'weeks'",
        ),
        (
            {"rules": [{"type": "count", "keep": 0}]},
            "retention policy: rules[0]: keep must be an integer of at least 1, got 0",
        ),
        (
            {"rules": [{"type": "count", "keep": "5"}]},
            "retention policy: rules[0]: keep must be an integer of at least 1, got '5'",
        ),
        (
            {"rules": [{"type": "count", "keep": True}]},
            "retention policy: rules[0]: keep must be an integer of at least 1, got True",
        ),
        (
            {"rules": [{"type": "count", "keep": 1, "unit": "d"}]},
            "retention policy: rules[0]: unknown field 'unit' (type, keep)",
        ),
    ],
)
def test_check_policy_errors(value: Any, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_policy(value)
    assert caught.value.message == message


def test_to_delete_refuses_a_bad_policy() -> None:
    with pytest.raises(Invalid):
        to_delete(
            TEN, {"strategy": "AND", "rules": [{"type": "count", "keep": -1}]}, protected=set(), now=NOW
        )
