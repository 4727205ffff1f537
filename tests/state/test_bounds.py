"""States and Pulumi exports are bounded in depth before any parser sees them (issue 11): a 200 KB
state of nested `[` grew the server to 23.7 GB (ijson's cost is quadratic in the depth); depth 15,000
was accepted and stored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.factories import body, md5_header, pulumi_export, tf_state
from tests.rss import peak_rss_growth
from tests.state.test_backend_api import URL, post_state, versions
from xcloudflow import bounded
from xcloudflow.settings import Settings
from xcloudflow.state import documents


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_state(depth: int) -> bytes:
    doc = json.dumps(tf_state()).encode()
    # The deep value sits in a resource's attributes, as a provider's nested blocks would.
    return doc.replace(b'"input": "hello"', b'"input": ' + nested(depth).encode(), 1)


def real_state(depth: int) -> dict[str, object]:
    """A state whose attributes nest like provider blocks (WAFv2 statements, CRDs): `depth` in all."""
    value: object = "leaf"
    for i in range(depth - 6):  # state, resources, resource, instances, instance, attributes
        value = [value] if i % 2 else {"statement": value}
    doc = tf_state()
    doc["resources"][0]["instances"][0]["attributes"] = {"rule": value}  # type: ignore[index]
    return doc


def test_a_deep_state_is_refused_before_parsing_and_nothing_is_stored(admin: TestClient) -> None:
    data = deep_state(15_000)
    with peak_rss_growth() as growth:
        resp = post_state(admin, data)
    assert resp.status_code == 400, resp.text  # type: ignore[attr-defined]
    error = resp.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "too_deep"
    assert "the state is nested more than 100 levels deep (line 1)" in error["message"]
    assert "XCF_CONTENT_MAX_DEPTH" in error["message"]
    assert growth.mib < 100
    assert versions(admin) == []


def test_the_100000_level_attack_is_refused_in_bounded_memory(admin: TestClient) -> None:
    data = b'{"version": 4, "serial": 1, "lineage": "x", "resources": [' + nested(100_000).encode() + b"]}"
    assert len(data) > 200_000
    with peak_rss_growth() as growth:
        resp = admin.post(URL, content=data, headers={"Content-MD5": md5_header(data)})
    assert resp.status_code == 400 and "nested more than 100 levels" in resp.text
    assert growth.mib < 100
    assert versions(admin) == []


def test_depth_is_checked_across_chunks_of_a_streamed_body(admin: TestClient) -> None:
    data = deep_state(5_000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 777):  # splits inside strings and escapes too
            yield data[start : start + 777]

    resp = admin.post(URL, content=chunks())
    assert resp.status_code == 400 and "nested more than 100 levels" in resp.text
    assert versions(admin) == []


def test_real_states_nest_far_less_and_are_stored(admin: TestClient) -> None:
    doc = real_state(60)
    doc["resources"][0]["instances"][0]["attributes"]["policy"] = json.dumps(  # type: ignore[index]
        {"Statement": [[[[[[[[[[{"Effect": "Allow"}]]]]]]]]]]}
    )  # brackets inside strings do not count, escaped quotes included
    resp = post_state(admin, doc)
    assert resp.status_code == 200, resp.text  # type: ignore[attr-defined]
    assert [v["version"] for v in versions(admin)] == [1]


def test_a_deep_pulumi_export_is_refused(admin: TestClient) -> None:
    doc = pulumi_export()
    doc["deployment"]["resources"][-1]["outputs"] = {"deep": "PLACEHOLDER"}  # type: ignore[index]
    data = body(doc).replace(b'"PLACEHOLDER"', nested(3_000).encode())
    with peak_rss_growth() as growth:
        resp = admin.put("/pulumi/state/shop/dev", content=data)
    assert resp.status_code == 400 and "nested more than 100 levels" in resp.text
    assert growth.mib < 100
    assert admin.get("/api/v1/stacks/pulumi/shop/dev/versions").status_code == 404


def test_the_limit_is_a_setting(database_url: str, tmp_path: object, db: object) -> None:
    from xcloudflow.server.app import create_app

    settings = Settings(
        data_dir=tmp_path / "data",  # type: ignore[operator]
        database_url=database_url,
        bootstrap_token=ADMIN_TOKEN,
        encryption_key="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        content_max_depth=20,
    )
    try:
        with TestClient(create_app(settings, maintenance=False), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            refused = post_state(client, real_state(21))
            assert refused.status_code == 400  # type: ignore[attr-defined]
            assert "nested more than 20 levels" in refused.text  # type: ignore[attr-defined]
            assert post_state(client, real_state(20)).status_code == 200  # type: ignore[attr-defined]
    finally:
        bounded.configure(bounded.ContentLimits())


def test_stored_states_are_read_through_the_same_guard() -> None:
    # A version stored before the limit existed cannot make the inventory or a diff explode.
    data = b'{"version": 4, "resources": [' + nested(100_000).encode() + b"]}"
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    with peak_rss_growth() as growth:
        with pytest.raises(ValueError, match="stored state is nested more than 100 levels"):
            documents.load_object_streaming(iter(chunks))
        with pytest.raises(bounded.TooDeep):
            documents.load_json(iter(chunks))
    assert growth.mib < 100
