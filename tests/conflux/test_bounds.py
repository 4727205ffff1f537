"""Conflux content is bounded in depth and alias expansion before it is validated (issue 11): deep
content was a 500 (RecursionError), and a 279-byte YAML document took 5.2 s per 10^5 leaves inside
the publish transaction, holding the row lock."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conflux.test_api import API, count_versions, make_config
from tests.rss import peak_rss_growth
from xcloudflow.conflux import formats

ADDR = "default/app-a/production"

# 306 bytes: nine anchors, each a list of nine aliases of the one before (9^9 leaves when expanded).
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
SCHEMA = '{"type": "object", "additionalProperties": {"type": "array"}}'


def deep(fmt: str, depth: int) -> str:
    if fmt == "json":
        return '{"a": ' + "[" * depth + "]" * depth + "}"
    if fmt == "yaml":
        return "a: " + "[" * depth + "]" * depth + "\n"
    return "a = " + "[" * depth + "]" * depth + "\n"


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
@pytest.mark.parametrize("depth", [150, 100_000])
def test_deep_content_is_422_and_nothing_is_stored(admin: TestClient, fmt: str, depth: int) -> None:
    path = f"{API}/configs/{ADDR}/deep.{fmt}"
    make_config(admin, path, format=fmt)
    with peak_rss_growth() as growth:
        resp = admin.post(f"{path}/publish", json={"content": deep(fmt, depth)})
    assert resp.status_code == 422, resp.text
    message = resp.json()["error"]["message"]
    assert "nested more than 100 levels deep" in message, message
    assert growth.mib < 100
    assert count_versions(admin, path) == 0


def test_toml_nested_through_dotted_keys_is_refused() -> None:
    with pytest.raises(formats.ContentError) as err:
        formats.validate("a" + ".a" * 200 + " = 1\n", "toml", None)
    assert "nested more than 100 levels deep" in err.value.message


def test_deep_json_says_where() -> None:
    content = '{\n  "a":\n' + "[" * 120 + "]" * 120 + "}"
    with pytest.raises(formats.ContentError) as err:
        formats.validate(content, "json", None)
    assert err.value.path == "line 3" and "invalid json at line 3" in err.value.message


def test_a_yaml_alias_bomb_is_refused_before_validation(admin: TestClient) -> None:
    assert len(ALIAS_BOMB) < 400
    path = f"{API}/configs/{ADDR}/bomb.yaml"
    make_config(admin, path, format="yaml", schema=SCHEMA)
    with peak_rss_growth() as growth:
        resp = admin.post(f"{path}/publish", json={"content": ALIAS_BOMB})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert "aliases expand to more than 10000 values" in error["message"]
    assert error["details"]["path"] == "line 5, column 8"  # the first alias of `e`, where it passed
    assert growth.mib < 100
    assert count_versions(admin, path) == 0


def test_yaml_anchors_used_as_ci_files_use_them_still_publish(admin: TestClient) -> None:
    path = f"{API}/configs/{ADDR}/ci.yaml"
    make_config(admin, path, format="yaml")
    content = "defaults: &defaults {image: python, retries: 2}\nversion: &v '3.12'\njobs:\n" + "".join(
        f"  j{i}:\n    <<: *defaults\n    python: *v\n" for i in range(200)
    )
    resp = admin.post(f"{path}/publish", json={"content": content})
    assert resp.status_code == 201, resp.text


def test_recursive_yaml_is_refused() -> None:
    with pytest.raises(formats.ContentError) as err:
        formats.validate("a: &a [*a]\n", "yaml", None)
    assert "recursive" in err.value.message and err.value.path == "line 1, column 8"


def test_a_deep_schema_is_400_not_500(admin: TestClient) -> None:
    path = f"{API}/configs/{ADDR}/schema.json"
    resp = admin.put(path, json={"format": "json", "schema": "[" * 100_000})
    assert resp.status_code == 400, resp.text
    assert "the schema is nested more than 100 levels deep" in resp.json()["error"]["message"]
    assert admin.get(path).status_code == 404
