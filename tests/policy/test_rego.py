"""Rego policies through the real regopy: the example policies, compile errors, conftest shapes, sets."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from xcloudflow.errors import Invalid
from xcloudflow.policy import PolicyBundle, PolicyOutcome, PolicySetConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "platform"
SETS = [
    PolicySetConfig(name="security", path="policies/security", enforcement="mandatory"),
    PolicySetConfig(name="cost", path="policies/cost", enforcement="advisory"),
]


def example_files() -> dict[str, str]:
    return {
        path.relative_to(EXAMPLES).as_posix(): path.read_text()
        for path in sorted(EXAMPLES.glob("policies/**/*.rego"))
    }


def policy_input(
    *,
    layer: str = "Foundation",
    ref: str = "modules/network",
    key: str = "network/network",
    actions: tuple[list[str], ...] = (["create"],),
    inputs: dict[str, Any] | None = None,
    add: int = 1,
    monthly_cost: float = 0.0,
) -> dict[str, Any]:
    """The document the compose domain builds for one node (contract: 'The policy input's shape')."""
    changes = [
        {"address": f"terraform_data.r{index}", "type": "terraform_data", "actions": list(action)}
        for index, action in enumerate(actions)
    ]
    summary = {
        "add": sum("create" in a for a in actions),
        "change": sum(a == ["update"] for a in actions),
        "destroy": sum("delete" in a for a in actions),
    }
    return {
        "changeset": {
            "id": "5b0c7a52-8d7e-4c55-9a43-3f1f2c7d0e11",
            "environment": "prod",
            "commit": "3f7c2a9d0b1e4f5a6c7d8e9f0a1b2c3d4e5f6a7b",
            "summary": {"add": add, "change": 0, "destroy": 0},
        },
        "node": {
            "key": key,
            "composition": "compositions/foundation/network",
            "module": key.split("/")[-1],
            "ref": ref,
            "engine": "terraform",
            "layer": layer,
            "route": {
                "engine": "terraform",
                "reconcile": {"strategy": "on_drift", "interval": 86400},
                "drift": "alert",
                "approval": "required",
                "backup": "pre-change",
            },
            "inputs": inputs if inputs is not None else {"cidr": "10.0.0.0/16"},
            "monthly_cost": monthly_cost,
        },
        "plan": {"has_changes": bool(changes), "summary": summary, "resource_changes": changes},
        "composition": {
            "apiVersion": "xcloudflow.io/v1alpha1",
            "kind": "Composition",
            "metadata": {"name": "network"},
            "spec": {"lifecycle": layer, "modules": [{"ref": ref}]},
        },
        "environment": {
            "apiVersion": "xcloudflow.io/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": "prod"},
            "spec": {"protected": True, "compositions": [{"ref": "compositions/foundation/network"}]},
        },
        "budget": {"monthlyCost": 500, "maxResourceChanges": 50},
    }


def by_package(outcomes: list[PolicyOutcome]) -> dict[str, PolicyOutcome]:
    return {outcome.package: outcome for outcome in outcomes}


@pytest.fixture(scope="module")
def examples() -> PolicyBundle:
    return PolicyBundle.compile(example_files(), SETS)


# ---------------------------------------------------------------------- the example policies


def test_examples_compile_into_their_sets(examples: PolicyBundle) -> None:
    assert examples.files == [
        "policies/cost/budget.rego",
        "policies/security/inputs.rego",
        "policies/security/protect_foundation.rego",
    ]
    outcomes = examples.evaluate(policy_input())
    assert [(o.set, o.enforcement, o.package, o.file) for o in outcomes] == [
        ("cost", "advisory", "xcf.cost.budget", "policies/cost/budget.rego"),
        ("security", "mandatory", "xcf.security.foundation", "policies/security/protect_foundation.rego"),
        ("security", "mandatory", "xcf.security.inputs", "policies/security/inputs.rego"),
    ]
    assert all(not o.deny and not o.warn and not o.blocking for o in outcomes)


def test_deleting_a_foundation_resource_is_blocked(examples: PolicyBundle) -> None:
    outcomes = by_package(examples.evaluate(policy_input(actions=(["create"], ["delete"]))))
    foundation = outcomes["xcf.security.foundation"]
    assert foundation.deny == [
        "node network/network: deleting terraform_data.r1 in the Foundation layer needs an override"
    ]
    assert foundation.blocking
    assert foundation.to_json()["blocking"] is True
    assert foundation.to_json()["deny"] == foundation.deny


def test_replacing_a_foundation_resource_is_a_delete_too(examples: PolicyBundle) -> None:
    outcomes = by_package(examples.evaluate(policy_input(actions=(["delete", "create"], ["delete"]))))
    assert outcomes["xcf.security.foundation"].deny == [
        "node network/network: deleting terraform_data.r0 in the Foundation layer needs an override",
        "node network/network: deleting terraform_data.r1 in the Foundation layer needs an override",
    ]


@pytest.mark.parametrize(
    ("layer", "actions"),
    [
        ("Platform", (["delete"],)),  # deletes outside Foundation are not this policy's business
        ("Foundation", (["create"], ["update"], ["no-op"], ["read"])),
        ("Foundation", ()),
    ],
)
def test_foundation_policy_passes_other_changes(examples: PolicyBundle, layer: str, actions: Any) -> None:
    outcomes = by_package(examples.evaluate(policy_input(layer=layer, actions=actions)))
    assert outcomes["xcf.security.foundation"].deny == []
    assert not any(o.blocking for o in outcomes.values())


def test_a_public_database_is_blocked(examples: PolicyBundle) -> None:
    doc = policy_input(
        layer="Platform", ref="modules/database", key="database/rds", inputs={"publicly_accessible": True}
    )
    inputs = by_package(examples.evaluate(doc))["xcf.security.inputs"]
    assert inputs.blocking
    assert inputs.deny == [
        "node database/rds: input publicly_accessible is true; databases (modules/database) must not be "
        "reachable from the internet"
    ]


@pytest.mark.parametrize(
    ("ref", "inputs"),
    [
        ("modules/database", {"publicly_accessible": False}),
        ("modules/database", {}),
        ("modules/database", {"publicly_accessible": "true"}),  # a string is not the boolean true
        ("modules/web", {"publicly_accessible": True}),  # only databases are held to it
        ("modules/databases-old", {"publicly_accessible": True}),  # a prefix of the name is not enough
    ],
)
def test_inputs_policy_passes_private_or_other_modules(
    examples: PolicyBundle, ref: str, inputs: dict[str, Any]
) -> None:
    doc = policy_input(layer="Platform", ref=ref, key="database/rds", inputs=inputs)
    assert by_package(examples.evaluate(doc))["xcf.security.inputs"].deny == []


def test_a_database_in_a_subdirectory_is_held_to_the_rule(examples: PolicyBundle) -> None:
    doc = policy_input(
        layer="Platform", ref="modules/database/postgres", inputs={"publicly_accessible": True}
    )
    assert by_package(examples.evaluate(doc))["xcf.security.inputs"].blocking


def test_budget_warns_but_never_blocks(examples: PolicyBundle) -> None:
    doc = policy_input(layer="Application", add=51, monthly_cost=612.5)
    budget = by_package(examples.evaluate(doc))["xcf.cost.budget"]
    assert budget.warn == [
        "changeset 5b0c7a52-8d7e-4c55-9a43-3f1f2c7d0e11 adds 51 resources, more than the budget of 50 per change",
        "node network/network: estimated monthly cost 612.50 exceeds the budget of 500.00",
    ]
    assert budget.deny == [] and not budget.blocking


@pytest.mark.parametrize(("add", "cost"), [(50, 500.0), (0, 0.0), (49, 499.99)])
def test_budget_at_or_under_the_limits_is_quiet(examples: PolicyBundle, add: int, cost: float) -> None:
    doc = policy_input(add=add, monthly_cost=cost)
    assert by_package(examples.evaluate(doc))["xcf.cost.budget"].warn == []


def test_budget_without_thresholds_is_quiet(examples: PolicyBundle) -> None:
    doc = policy_input(add=10_000, monthly_cost=1e6)
    del doc["budget"]
    assert by_package(examples.evaluate(doc))["xcf.cost.budget"].warn == []


def test_an_advisory_deny_does_not_block() -> None:
    files = {"policies/cost/strict.rego": 'package cost.strict\n\ndeny contains "too expensive" if true\n'}
    [outcome] = PolicyBundle.compile(files, SETS).evaluate({})
    assert outcome.deny == ["too expensive"] and outcome.enforcement == "advisory" and not outcome.blocking


# ---------------------------------------------------------------------- compile errors


def compile_error(files: dict[str, str], sets: list[PolicySetConfig] | None = None) -> Invalid:
    with pytest.raises(Invalid) as caught:
        PolicyBundle.compile(files, SETS if sets is None else sets)
    return caught.value


def test_an_unclosed_rule_names_file_and_line(capfd: pytest.CaptureFixture[str]) -> None:
    source = 'package main\n\ndeny contains msg if {\n    input.a == 1\n    msg := "x"\n'
    error = compile_error({"policies/security/bad.rego": source})
    assert "policies/security/bad.rego:3:22" in error.message
    assert "unclosed" in error.message
    assert error.details["issues"] == [
        {
            "file": "policies/security/bad.rego",
            "line": 3,
            "column": 22,
            "message": "this is unclosed (at `{`)",
        }
    ]
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # rego-cpp prints its errors unless told not to


def test_a_bad_operator_names_its_line() -> None:
    source = "package main\n\n# a comment\ndeny contains msg if {\n    input.a == == 1\n    msg := 1\n}\n"
    error = compile_error({"policies/x.rego": source})
    assert "policies/x.rego:5:" in error.message
    assert {issue["line"] for issue in error.details["issues"]} == {5}
    assert "Invalid boolean operator (at `==`)" in error.message


def test_an_unclosed_list_points_at_its_bracket() -> None:
    source = 'package main\n\ndeny contains msg if {\n  xs := [1, 2\n  msg := "a"\n}\n'
    issues = compile_error({"policies/x.rego": source}).details["issues"]
    assert {(issue["line"], issue["column"]) for issue in issues} >= {(4, 9)}


def test_lines_count_after_non_ascii_text() -> None:
    source = 'package main\n\n# Fundação, 基础设施\nwarn contains "ü" if {\n    input.a ==\n}\n'
    error = compile_error({"policies/x.rego": source})
    assert all(issue["line"] in (4, 5, 6) for issue in error.details["issues"]), error.details


def test_every_bad_file_is_reported_and_good_ones_are_not() -> None:
    files = {
        "policies/a.rego": "package a\n\ndeny contains msg if {\n",
        "policies/b.rego": 'package b\n\ndeny contains "ok" if true\n',
        "policies/c.rego": "package c\n\nwarn contains msg if {\n  msg := == 1\n}\n",
    }
    error = compile_error(files)
    reported = {issue["file"] for issue in error.details["issues"]}
    assert reported == {"policies/a.rego", "policies/c.rego"}
    assert error.message.startswith("policies do not compile")


def test_a_file_without_a_package_is_an_error() -> None:
    error = compile_error({"policies/x.rego": 'deny contains "x" if true\n'})
    assert error.details["issues"] == [
        {
            "file": "policies/x.rego",
            "line": 1,
            "column": 1,
            "message": "no `package` declaration: a policy file starts with `package <name>`",
        }
    ]


def test_an_unknown_function_is_a_compile_error_not_a_silent_pass() -> None:
    source = (
        "package main\n\nimport rego.v1\n\n"
        "deny contains msg if {\n    input.never_true\n    msg := no_such_helper(input.a)\n}\n"
    )
    error = compile_error({"policies/x.rego": source})
    assert "policies/x.rego:7:12: unknown function `no_such_helper`" in error.message


def test_opa_builtins_this_engine_lacks_are_named() -> None:
    source = (
        'package main\n\ndeny contains "outside" if {\n    not net.cidr_contains("10.0.0.0/8", input.ip)\n}\n'
    )
    error = compile_error({"policies/x.rego": source})
    assert "unknown function `net.cidr_contains`" in error.message
    assert "rego-cpp" in error.message


def test_functions_defined_in_the_policies_and_builtins_are_known() -> None:
    files = {
        "policies/lib.rego": "package lib\n\nshout(s) := upper(s)\n",
        "policies/main.rego": (
            "package main\n\nimport data.lib\n\n"
            "short(s) := substring(s, 0, 3)\n\n"
            "deny contains msg if {\n"
            '    # not_a_call(x) in a comment, "fake(1)" in a string\n'
            '    msg := concat("/", [lib.shout(input.a), short(input.a)])\n'
            "}\n"
        ),
    }
    outcomes = by_package(PolicyBundle.compile(files, []).evaluate({"a": "network"}))
    assert outcomes["main"].deny == ["NETWORK/net"]
    assert outcomes["lib"].deny == [] and outcomes["main"].set == "default"


def test_recursion_is_a_compile_error() -> None:
    source = 'package main\n\np if q\n\nq if p\n\ndeny contains "x" if p\n'
    error = compile_error({"policies/loop.rego": source})
    assert "Recursion detected" in error.message
    assert "policies/loop.rego:7" in error.message  # the rule whose body found the loop
    assert error.details["issues"][0]["line"] == 7


# ---------------------------------------------------------------------- what conftest users write


def evaluate_one(source: str, doc: dict[str, Any], path: str = "policies/p.rego") -> PolicyOutcome:
    [outcome] = PolicyBundle.compile({path: source}, []).evaluate(doc)
    return outcome


def test_old_syntax_partial_set_rules_work_like_conftest() -> None:
    source = 'package main\n\ndeny[msg] {\n    input.kind == "Deployment"\n    msg := "no deployments"\n}\n'
    assert evaluate_one(source, {"kind": "Deployment"}).deny == ["no deployments"]
    assert evaluate_one(source, {"kind": "Service"}).deny == []


def test_old_syntax_objects_with_msg_and_defaults() -> None:
    source = (
        'package main\n\ndefault allow = false\n\nallow { input.user == "admin" }\n\n'
        'deny[{"msg": m, "details": {}}] {\n    not allow\n    m := sprintf("%s may not", [input.user])\n}\n'
    )
    assert evaluate_one(source, {"user": "eve"}).deny == ["eve may not"]
    assert evaluate_one(source, {"user": "admin"}).deny == []


def test_future_keywords_and_rego_v1_imports() -> None:
    future = (
        "package main\n\nimport future.keywords.contains\nimport future.keywords.if\nimport future.keywords.in\n\n"
        'warn contains msg if {\n    some x in input.xs\n    x > 2\n    msg := sprintf("big %d", [x])\n}\n'
    )
    assert evaluate_one(future, {"xs": [1, 3, 4]}).warn == ["big 3", "big 4"]
    v1 = 'package main\n\nimport rego.v1\n\nwarn contains {"msg": "as object"} if input.on\n'
    assert evaluate_one(v1, {"on": True}).warn == ["as object"]


def test_conftest_rule_name_families() -> None:
    source = (
        "package main\n\nimport rego.v1\n\n"
        'deny_public contains "public" if input.public\n'
        'violation contains {"msg": "violated", "details": {"n": 1}} if input.public\n'
        'warn_old contains "old" if input.old\n'
        'denyish contains "not a deny rule" if true\n'
        'helper contains "helpers are not results" if true\n'
    )
    outcome = evaluate_one(source, {"public": True, "old": True})
    assert outcome.deny == ["public", "violated"]
    assert outcome.warn == ["old"]


def test_complete_rules_and_arrays() -> None:
    source = 'package main\n\ndeny := ["a", "b"] if input.on\n\nwarn := "single" if input.on\n'
    outcome = evaluate_one(source, {"on": True})
    assert (outcome.deny, outcome.warn) == (["a", "b"], ["single"])
    assert evaluate_one(source, {"on": False}).deny == []  # undefined is no message, not an error


def test_non_string_messages_are_rendered_as_json() -> None:
    source = 'package main\n\nimport rego.v1\n\ndeny contains {"msg": {"code": 7}} if true\ndeny contains 42 if true\n'
    assert sorted(evaluate_one(source, {}).deny) == ["42", '{"code": 7}']


def test_an_engine_output_that_is_not_json_is_still_read() -> None:
    # rego-cpp 1.5 keeps the quotes of an upper()/lower()/concat() result inside a sprintf of several
    # arguments and prints it unescaped; the messages are then read from the result tree.
    source = (
        'package main\n\nimport rego.v1\n\ndeny contains sprintf("%s/%s", [upper(input.a), "x"]) if true\n'
    )
    [message] = evaluate_one(source, {"a": "net"}).deny
    assert message.replace('"', "") == "NET/x"


def test_a_failing_helper_that_deny_does_not_use_is_harmless() -> None:
    source = 'package main\n\nimport rego.v1\n\nhelper := 1\nhelper := 2\n\ndeny contains "x" if input.on\n'
    assert evaluate_one(source, {"on": True}).deny == ["x"]


def test_a_runtime_error_names_package_and_file() -> None:
    source = 'package main\n\nimport rego.v1\n\nlimit := 1 if input.on\nlimit := 2 if input.on\n\ndeny contains "x" if limit > 0\n'
    bundle = PolicyBundle.compile({"policies/conflict.rego": source, "policies/ok.rego": "package ok\n"}, [])
    assert by_package(bundle.evaluate({"on": False}))["main"].deny == []
    with pytest.raises(Invalid) as caught:
        bundle.evaluate({"on": True})
    assert "policy package `main` (policies/conflict.rego) failed while evaluating" in caught.value.message
    assert "multiple outputs" in caught.value.message
    assert caught.value.details["package"] == "main"


# ---------------------------------------------------------------------- sets and packages


def test_sets_are_chosen_by_the_longest_prefix_and_the_rest_is_default() -> None:
    sets = [
        PolicySetConfig(name="all", path="policies", enforcement="advisory"),
        PolicySetConfig(name="security", path="policies/security/", enforcement="mandatory"),
    ]
    files = {
        "policies/security/a.rego": 'package a\n\ndeny contains "a" if true\n',
        "policies/b.rego": 'package b\n\ndeny contains "b" if true\n',
        "other/c.rego": 'package c\n\ndeny contains "c" if true\n',
        "policies/securityish/d.rego": 'package d\n\ndeny contains "d" if true\n',
    }
    outcomes = by_package(PolicyBundle.compile(files, sets).evaluate({}))
    assert {name: (o.set, o.enforcement, o.blocking) for name, o in outcomes.items()} == {
        "a": ("security", "mandatory", True),
        "b": ("all", "advisory", False),
        "c": ("default", "advisory", False),
        "d": ("all", "advisory", False),
    }


def test_files_of_one_package_are_merged() -> None:
    files = {
        "policies/security/one.rego": 'package shared\n\nimport rego.v1\n\ndeny contains "one" if input.on\n',
        "policies/security/two.rego": 'package shared\n\nimport rego.v1\n\ndeny contains "two" if input.on\n',
    }
    [outcome] = PolicyBundle.compile(files, SETS).evaluate({"on": True})
    assert outcome.deny == ["one", "two"]
    assert outcome.files == ("policies/security/one.rego", "policies/security/two.rego")
    assert outcome.file == "policies/security/one.rego, policies/security/two.rego"
    assert outcome.to_json()["files"] == list(outcome.files)


def test_a_package_split_across_sets_is_refused() -> None:
    files = {
        "policies/security/one.rego": 'package shared\n\ndeny contains "one" if true\n',
        "policies/cost/two.rego": 'package shared\n\nwarn contains "two" if true\n',
    }
    error = compile_error(files)
    assert "package `shared` is split across policy sets" in error.message
    assert {issue["file"] for issue in error.details["issues"]} == set(files)


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([PolicySetConfig(name="x", path="p", enforcement="strict")], "enforcement must be one of"),  # type: ignore[arg-type]
        (
            [
                PolicySetConfig(name="x", path="p", enforcement="advisory"),
                PolicySetConfig(name="x", path="q", enforcement="mandatory"),
            ],
            "declared twice",
        ),
    ],
)
def test_bad_set_configs(sets: list[PolicySetConfig], expected: str) -> None:
    assert expected in compile_error({}, sets).message


def test_no_policies_evaluate_to_nothing() -> None:
    bundle = PolicyBundle.compile({}, SETS)
    assert bundle.files == [] and bundle.evaluate(policy_input()) == []


def test_an_input_that_is_not_json_is_refused(examples: PolicyBundle) -> None:
    with pytest.raises(Invalid, match="not a JSON document"):
        examples.evaluate({"node": object()})


# ---------------------------------------------------------------------- threads and speed


def test_threads_sharing_a_bundle_each_get_their_own_answer(examples: PolicyBundle) -> None:
    failures: list[str] = []

    def worker(index: int) -> None:
        for round_ in range(40):
            deleting = (index + round_) % 2 == 0
            doc = policy_input(key=f"n{index}/{round_}", actions=(["delete"],) if deleting else (["create"],))
            foundation = by_package(examples.evaluate(doc))["xcf.security.foundation"]
            expected = (
                [
                    f"node n{index}/{round_}: deleting terraform_data.r0 in the Foundation layer needs an override"
                ]
                if deleting
                else []
            )
            if foundation.deny != expected:
                failures.append(f"{index}/{round_}: {foundation.deny}")

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
