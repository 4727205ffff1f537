"""Workspace test helpers: real .tar.gz archives built with tarfile, and API shortcuts."""

from __future__ import annotations

import tarfile
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import targz  # noqa: F401 - the workspace tests take it from here

API = "/api/v1/workspaces"
MAIN_TF = (
    'variable "region" {}\n\nvariable "size" {\n  default = 1\n}\n\noutput "r" {\n  value = var.region\n}\n'
)


def member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def make_workspace(
    client: TestClient, project: str = "shop", name: str = "dev", **fields: Any
) -> dict[str, Any]:
    resp = client.post(API, json={"project": project, "name": name, **fields})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def upload(
    client: TestClient, data: bytes, path: str = "shop/dev", message: str | None = None
) -> dict[str, Any]:
    resp = client.post(
        f"{API}/{path}/code-versions",
        params={"message": message} if message else None,
        content=data,
        headers={"Content-Type": "application/gzip"},
    )
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out
