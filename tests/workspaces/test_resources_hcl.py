"""The HCL helpers (validation, depends_on merge by text edit) and `generate_main`, including a real
`terraform validate` of a generated main.tf."""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest
from fastapi.testclient import TestClient

from tests.workspaces.resources_helpers import WS, add, block, depend, make_workspace, terraform
from xcloudflow.db import Database
from xcloudflow.workspaces import hcl
from xcloudflow.workspaces.resources import generate_main

# ---------------------------------------------------------------- parse_block (no database)


@pytest.mark.parametrize(
    ("text", "address", "kind"),
    [
        ('resource "terraform_data" "a" {\n  input = 1\n}\n', "terraform_data.a", "resource"),
        (
            'data "terraform_remote_state" "net" {\n  backend = "local"\n}\n',
            "data.terraform_remote_state.net",
            "data",
        ),
        ('module "net" {\n  source = "./net"\n}\n', "module.net", "module"),
        ('# leading comment\nresource "aws_s3_bucket" "logs-2" {}\n', "aws_s3_bucket.logs-2", "resource"),
        ("resource aws_instance web {}\n", "aws_instance.web", "resource"),  # bare labels are valid HCL
        ('resource "a" "b" {\r\n  x = 1\r\n}\r\n', "a.b", "resource"),
    ],
)
def test_parse_block_accepts_one_addressable_block(text: str, address: str, kind: str) -> None:
    found = hcl.parse_block(text)
    assert (found.address, found.kind) == (address, kind)


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ('provider "aws" {\n  region = "x"\n}\n', "a provider block", 1),
        ('resource "a" "b" {}\n\nresource "c" "d" {}\n', "2 blocks (at lines 1, 3)", None),
        ('x = 1\nresource "a" "b" {}\n', "top-level argument 'x'", 1),
        ("", "no block", None),
        ("# only a comment\n", "no block", None),
        ('resource "a" {}\n', "takes 2 label(s), this one has 1", 1),
        ('module "a" "b" {}\n', "takes 1 label(s), this one has 2", 1),
        ('resource "a" "${var.x}" {}\n', "plain strings", 1),
        ('resource "a" "b" {\n  x = \n}\n', "syntax error", 2),
        ('resource "a" "b" {\n  depends_on = "a.c"\n}\n', "depends_on must be a list", 2),
        ('resource "a" "b" {\n  depends_on = []\n  depends_on = []\n}\n', "depends_on is set twice", 3),
        ('resource "1a" "b" {}\n', "not a valid address", 1),
    ],
)
def test_parse_block_refuses_with_the_problem_and_line(text: str, problem: str, line: int | None) -> None:
    with pytest.raises(hcl.HclProblem) as caught:
        hcl.parse_block(text)
    assert problem in caught.value.message
    if line is not None:
        assert caught.value.line == line


def test_addresses_follow_terraform_rules() -> None:
    for good in ("a.b", "terraform_data.web-1", "data.x.y", "module.net", "_a._b"):
        assert hcl.is_valid_address(good), good
    for bad in (
        "a",
        "module",
        "data.x",
        "a.b.c",
        "1a.b",
        "module.a.b",
        "-a.b",
        "a.b/c",
        "a.b ",
        "data.x.y.z",
    ):
        assert not hcl.is_valid_address(bad), bad


# ---------------------------------------------------------------- add_depends_on (no database)


def _depends(text: str) -> list[str]:
    """depends_on as Terraform reads it (references are "${...}" in python-hcl2's output)."""
    body = hcl2.loads(text)
    kind = next(k for k in body if k in ("resource", "data", "module"))
    inner = body[kind][0]
    while "__is_block__" not in inner:
        inner = next(iter(inner.values()))
    return [r.removeprefix("${").removesuffix("}") for r in inner.get("depends_on", [])]


def test_depends_on_line_goes_after_the_opening_brace_keeping_comments_and_layout() -> None:
    text = (
        '# why this exists\nresource "terraform_data" "a" { # trailing comment\n    input = "x" # keep\n}\n'
    )
    out = hcl.add_depends_on(text, ["terraform_data.b", "data.x.y"])
    assert out == (
        '# why this exists\nresource "terraform_data" "a" { # trailing comment\n'
        "    depends_on = [terraform_data.b, data.x.y]\n"
        '    input = "x" # keep\n}\n'
    )
    assert _depends(out) == ["terraform_data.b", "data.x.y"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'resource "a" "b" {\n  depends_on = [a.c] # keep\n}\n',
            'resource "a" "b" {\n  depends_on = [a.c, a.d, module.m] # keep\n}\n',
        ),
        (
            'resource "a" "b" {\n  depends_on = []\n}\n',
            'resource "a" "b" {\n  depends_on = [a.d, module.m]\n}\n',
        ),
        (
            'module "m2" {\n  source = "./m"\n  depends_on = [\n    a.c,\n  ]\n}\n',
            'module "m2" {\n  source = "./m"\n  depends_on = [\n    a.c,\n    a.d,\n    module.m,\n  ]\n}\n',
        ),
        (
            'resource "a" "b" {\n  depends_on = [a.d, module.m]\n}\n',  # already there: unchanged
            'resource "a" "b" {\n  depends_on = [a.d, module.m]\n}\n',
        ),
        (
            'resource "a" "b" {\n  depends_on = [\n    a.c\n  ]\n}\n',
            'resource "a" "b" {\n  depends_on = [\n    a.c,\n    a.d,\n    module.m\n  ]\n}\n',
        ),
    ],
)
def test_an_existing_depends_on_list_is_extended(text: str, expected: str) -> None:
    assert hcl.add_depends_on(text, ["a.d", "module.m"]) == expected


@pytest.mark.parametrize(
    "text",
    [
        'resource "a" "b" {}',
        'resource "a" "b" { input = 1 }\n',
        'resource "a" "b" { input = 1\n}\n',
        'data "a" "b" {\n}\n',
    ],
)
def test_one_line_blocks_are_opened_up(text: str) -> None:
    out = hcl.add_depends_on(text, ["a.c", "a.d"])
    assert _depends(out) == ["a.c", "a.d"]
    assert "  depends_on = [a.c, a.d]\n" in out
    assert hcl.parse_block(out).address == hcl.parse_block(text).address


def test_heredocs_and_braces_in_strings_do_not_confuse_the_edit() -> None:
    text = 'resource "a" "b" {\n  x = "{ not a brace"\n  y = <<EOT\n  depends_on = [nope]\n}\nEOT\n}\n'
    out = hcl.add_depends_on(text, ["a.c"])
    assert out == text.replace("{\n", "{\n  depends_on = [a.c]\n", 1)
    assert _depends(out) == ["a.c"]


def test_dependency_order_and_cycles() -> None:
    edges = [("b", "z"), ("z", "y"), ("a", "y")]
    assert hcl.dependency_order(["a", "b", "c", "y", "z"], edges) == ["c", "y", "a", "z", "b"]
    with pytest.raises(hcl.HclProblem, match=r"the dependencies of a\.b, a\.c form a cycle"):
        hcl.dependency_order(["a.a", "a.b", "a.c"], [("a.b", "a.c"), ("a.c", "a.b")])


def test_assemble_main_without_dependencies_keeps_texts_as_written() -> None:
    blocks = {"t.b": (3, 'resource "t" "b" {}\n\n\n'), "t.a": (1, "# note\nresource t a {}")}
    assert hcl.assemble_main(blocks, []) == (
        '# xcf: t.a v1\n# note\nresource t a {}\n\n# xcf: t.b v3\nresource "t" "b" {}\n'
    )


# ---------------------------------------------------------------- generate_main (database)


def _main(db: Database, workspace_id: int) -> str:
    with db.read() as session:
        files = generate_main(session=session, workspace_id=workspace_id)
    assert set(files) == {"main.tf"}
    return files["main.tf"]


def _order(main: str) -> list[str]:
    return [line.split()[2] for line in main.splitlines() if line.startswith("# xcf: ")]


def test_generate_main_is_empty_without_resources(admin: TestClient, db: Database) -> None:
    ws = make_workspace(admin)
    with db.read() as session:
        assert generate_main(session=session, workspace_id=ws["id"]) == {}


def test_generate_main_orders_dependencies_first_ties_by_address(admin: TestClient, db: Database) -> None:
    ws = make_workspace(admin)
    for address in (
        "terraform_data.c",
        "terraform_data.a",
        "terraform_data.b",
        "terraform_data.z",
        "module.m",
    ):
        add(admin, address, block(address, '  source = "./m"\n') if address.startswith("module") else None)
    # a -> z -> c; b is free; module.m depends on b
    depend(admin, "terraform_data.a", "terraform_data.z")
    depend(admin, "terraform_data.z", "terraform_data.c")
    depend(admin, "module.m", "terraform_data.b")
    main = _main(db, ws["id"])
    assert _order(main) == [
        "terraform_data.b",
        "module.m",
        "terraform_data.c",
        "terraform_data.z",
        "terraform_data.a",
    ]
    assert (
        '# xcf: terraform_data.a v1\nresource "terraform_data" "a" {\n  depends_on = [terraform_data.z]\n'
        in main
    )
    assert 'module "m" {\n  depends_on = [terraform_data.b]\n  source = "./m"\n}' in main
    assert '# xcf: terraform_data.c v1\nresource "terraform_data" "c" {\n  input' in main  # nothing added


def test_generate_main_uses_current_versions_and_merges_existing_depends_on(
    admin: TestClient, db: Database
) -> None:
    ws = make_workspace(admin)
    add(admin, "terraform_data.b")
    add(
        admin,
        "data.terraform_remote_state.r",
        block("data.terraform_remote_state.r", '  backend = "local"\n'),
    )
    add(admin, "terraform_data.a", block("terraform_data.a", '  input = "v1"\n'))
    mine = 'resource "terraform_data" "a" {\n  # mine\n  depends_on = [terraform_data.b]\n  input = "v2"\n}\n'
    assert admin.put(f"{WS}/resources/terraform_data.a", json={"hcl": mine}).status_code == 200
    depend(admin, "terraform_data.a", "terraform_data.b")  # already in the HCL: not repeated
    depend(admin, "terraform_data.a", "data.terraform_remote_state.r")
    main = _main(db, ws["id"])
    assert "# xcf: terraform_data.a v2\n" in main
    assert '  depends_on = [terraform_data.b, data.terraform_remote_state.r]\n  input = "v2"' in main
    assert "  # mine\n" in main
    assert _order(main) == ["data.terraform_remote_state.r", "terraform_data.b", "terraform_data.a"]
    # a rollback changes what is generated
    assert admin.post(f"{WS}/resources/terraform_data.a/rollback", json={"version": 1}).status_code == 200
    main = _main(db, ws["id"])
    assert "# xcf: terraform_data.a v1\n" in main and '"v1"' in main and '"v2"' not in main


def test_generated_main_tf_is_valid_for_real_terraform(
    admin: TestClient, db: Database, tmp_path: Path
) -> None:
    ws = make_workspace(admin)
    add(admin, "terraform_data.base", block("terraform_data.base", '  input = "base"\n'))
    add(
        admin,
        "terraform_data.app",
        'resource "terraform_data" "app" { input = "${terraform_data.base.output}-app" }\n',
    )
    add(
        admin,
        "data.terraform_remote_state.shared",
        'data "terraform_remote_state" "shared" {\n  backend = "local"\n'
        '  config = {\n    path = "shared.tfstate"\n  }\n}\n',
    )
    add(admin, "module.child", 'module "child" {\n  source = "./child"\n  depends_on = []\n}\n')
    depend(admin, "terraform_data.app", "terraform_data.base")
    depend(admin, "terraform_data.app", "data.terraform_remote_state.shared")
    depend(admin, "data.terraform_remote_state.shared", "terraform_data.base")
    depend(admin, "module.child", "terraform_data.app")
    (tmp_path / "main.tf").write_text(_main(db, ws["id"]))
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "main.tf").write_text('output "o" {\n  value = 1\n}\n')
    init = terraform(tmp_path, "init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    proc = terraform(tmp_path, "validate", "-json", "-no-color")
    result = json.loads(proc.stdout)
    assert proc.returncode == 0 and result["valid"] is True, proc.stdout + proc.stderr
    assert result["error_count"] == 0 and result["warning_count"] == 0

    # and Terraform does see a broken reference in a generated file: the check above is not vacuous
    (tmp_path / "main.tf").write_text(
        _main(db, ws["id"]).replace("terraform_data.base.output", "terraform_data.nope.output")
    )
    proc = terraform(tmp_path, "validate", "-json", "-no-color")
    assert json.loads(proc.stdout)["valid"] is False
