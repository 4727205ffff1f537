"""Compose documents are bounded before they become plans and job payloads (issue 11): a depth-6 alias
bomb in a module's inputs became an 8 MB job payload (+430 MB RSS); deep documents are refused too."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.compose.test_changesets_api import ENV, _nothing_stored, _plan
from tests.e2e.compose_helpers import commit, make_repo
from tests.rss import peak_rss_growth
from xcloudflow.compose.yamlsrc import SpecError, parse
from xcloudflow.settings import Settings

DATABASE = "compositions/platform/database.yaml"


def bomb_inputs(levels: int = 6, width: int = 10) -> str:
    text = "        a: &a [" + ", ".join(["x"] * width) + "]\n"
    for i in range(1, levels + 1):
        name, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        text += f"        {name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]\n"
    return text


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"compose_local_roots": str(tmp_path)})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, env=ENV)


def test_an_alias_bomb_in_inputs_is_refused_at_its_line(admin: TestClient, repo: Path) -> None:
    path = repo / DATABASE
    text = path.read_text()
    assert '        engine_version: "15"\n' in text
    path.write_text(
        text.replace('        engine_version: "15"\n', '        engine_version: "15"\n' + bomb_inputs())
    )
    commit(repo, "bomb")
    with peak_rss_growth() as growth:
        status, body = _plan(admin, repo)
    assert status == 400, body
    issues = body["error"]["details"]["issues"]  # type: ignore[index]
    [own] = [i for i in issues if i["file"] == DATABASE]
    assert "aliases expand to more than 10000 values" in own["message"]
    start = text.splitlines().index('        engine_version: "15"') + 1
    assert own["line"] == start + 4  # `d:`: 110 + 1,110 + 11,110 values from aliases pass 10,000
    assert growth.mib < 100
    _nothing_stored(admin)


def test_a_deep_document_is_refused(admin: TestClient, repo: Path) -> None:
    path = repo / DATABASE
    text = path.read_text()
    path.write_text(
        text.replace('        engine_version: "15"\n', "        deep: " + "[" * 5000 + "]" * 5000 + "\n")
    )
    commit(repo, "deep")
    status, body = _plan(admin, repo)
    assert status == 400, body
    issues = body["error"]["details"]["issues"]  # type: ignore[index]
    [own] = [i for i in issues if i["file"] == DATABASE]
    assert "nested more than 100 levels deep" in own["message"], own
    _nothing_stored(admin)


def test_line_numbers_survive_the_bounded_composer() -> None:
    doc = parse("a: 1\nb:\n  - &x {c: 2}\n  - *x\nd: &s text\ne: *s\n", file="f.yaml")
    assert doc.data == {"a": 1, "b": [{"c": 2}, {"c": 2}], "d": "text", "e": "text"}
    assert doc.line_of(("b", 0, "c")) == 3 and doc.line_of(("e",)) == 6 and doc.line_of(("d",)) == 5
    assert doc.line_of(("b", 1)) == 3  # an alias is where its anchor is, as PyYAML's composer has it
    with pytest.raises(SpecError) as err:
        parse("a: 1\nb: 2\n---\nc: 3\n", file="f.yaml")
    assert "single document" in str(err.value)
