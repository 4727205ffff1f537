"""Workspace test helpers: real .tar.gz archives built with tarfile, and API shortcuts."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from fastapi.testclient import TestClient

API = "/api/v1/workspaces"
MAIN_TF = (
    'variable "region" {}\n\nvariable "size" {\n  default = 1\n}\n\noutput "r" {\n  value = var.region\n}\n'
)


def targz(
    files: dict[str, bytes | str] | None = None,
    *,
    members: list[tarfile.TarInfo] | None = None,
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    """A .tar.gz holding `files` (path -> content) and then the raw `members` (links, devices...)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tar:
        for path, content in (files or {}).items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in members or []:
            tar.addfile(info)
    return buf.getvalue()


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
