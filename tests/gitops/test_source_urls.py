"""Source URLs are checked at `source add`: https, ssh, user@host:path, and file:// or absolute paths
under XCF_GITOPS_LOCAL_ROOTS only; anything else is a 422 that says why, never echoes credentials,
and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

BASE = "/api/v1/gitops/sources"

REFUSED = [
    ("http://example.com/r.git", "not encrypted"),
    ("git://example.com/r.git", "nor authenticated"),
    ("ftp://example.com/r.git", "scheme ftp:// is not allowed"),
    ("ext::sh", "remote helpers"),
    ("fd::17", "remote helpers"),
    ("https://", "needs a host name"),
    ("https:///srv/r.git", "needs a host name"),
    ("https://example.com", "names no repository"),
    ("https://example.com:99999/r.git", "bad host or port"),
    ("https://user:tok3n-Zx@example.com/r.git", "must not carry credentials"),
    ("https://tok3n-Zx@example.com/r.git", "must not carry credentials"),
    ("ssh://git:tok3n-Zx@example.com/r.git", "must not carry credentials"),
    ("ssh://-oProxyCommand=tok3n-Zx/r.git", "needs a host name"),
    ("ssh://-oProxy@example.com/r.git", "must not start with '-'"),
    ("-oProxyCommand@example.com:r.git", "must not start with '-'"),
    ("git@-example.com:r.git", "must not start with '-'"),
    ("user:tok3n-Zx@example.com:r.git", "not a git URL nor an absolute path"),
    ("https://example.com/r.git tok3n-Zx", "spaces or control characters"),
    ("https://example.com/r\n.git", "spaces or control characters"),
    ("relative/path", "not a git URL nor an absolute path"),
    ("file://example.com/srv/r.git", "absolute local path"),
    ("/etc", "XCF_GITOPS_LOCAL_ROOTS"),
    ("file:///etc", "XCF_GITOPS_LOCAL_ROOTS"),
]


def test_a_nul_in_the_url_is_refused_at_the_edge_and_stores_nothing(admin: TestClient) -> None:
    # NUL is refused in every JSON body before any route runs (docs/security.md, the HTTP edge)
    resp = admin.post(BASE, json={"name": "bad", "url": "https://example.com/r\x00.git"})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "validation_failed"
    assert [d["field"] for d in error["details"]] == ["body.url"]
    assert admin.get(BASE).json() == []


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_bad_urls_are_a_422_with_the_reason_and_store_nothing(
    admin: TestClient, url: str, reason: str
) -> None:
    resp = admin.post(BASE, json={"name": "bad", "url": url})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_url"
    assert reason in error["message"], error
    assert error["details"] == {"field": "url"}
    assert "tok3n-Zx" not in resp.text
    assert admin.get(BASE).json() == []
    audit = admin.get("/api/v1/audit-logs", params={"action": "gitops.source.create"}).json()["items"]
    assert audit == []


def test_secret_ref_is_for_https_only(admin: TestClient) -> None:
    resp = admin.post(BASE, json={"name": "x", "url": "git@example.com:r.git", "secretRef": {"name": "s"}})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"] == {"field": "secretRef"}


def test_good_urls_are_accepted(admin: TestClient, repo: Path) -> None:
    good = [
        "https://github.com/my-org/app-a-configs",
        "https://git.example.com:8443/my-org/configs.git",
        "ssh://git@github.com/my-org/configs.git",
        "ssh://git@[::1]:2222/configs.git",
        "git@github.com:my-org/configs.git",
        f"file://{repo}",
        str(repo),
        f"{repo}/production",
    ]
    for n, url in enumerate(good):
        resp = admin.post(BASE, json={"name": f"s{n}", "url": url, "suspend": True})
        assert resp.status_code == 201, (url, resp.text)
        assert resp.json()["url"] == url
    resp = admin.post(
        BASE, json={"name": "token", "url": "https://github.com/o/r.git", "secretRef": {"name": "git"}}
    )
    assert resp.status_code == 201, resp.text
