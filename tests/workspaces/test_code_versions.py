"""Code versions over the API: upload, list, show, download, compare, rollback and bad uploads."""

from __future__ import annotations

import hashlib
import json
import tarfile

from fastapi.testclient import TestClient

from tests.workspaces.conftest import API, MAIN_TF, make_workspace, member, targz, upload
from xcloudflow.workspaces.schemas import WorkspaceSettings

WS = f"{API}/shop/dev"


def test_upload_list_show_and_download(writer: TestClient, reader: TestClient) -> None:
    make_workspace(writer)
    data = targz({"main.tf": MAIN_TF, "modules/x/main.tf": "# x\n"})
    v1 = upload(writer, data, message="first")
    assert v1["number"] == 1 and v1["current"] is True and v1["message"] == "first"
    assert v1["sha256"] == hashlib.sha256(data).hexdigest() and v1["size"] == len(data)
    assert [f["path"] for f in v1["files"]] == ["main.tf", "modules/x/main.tf"]
    assert v1["files"][0]["sha256"] == hashlib.sha256(MAIN_TF.encode()).hexdigest()
    assert v1["created_by"] == "wendy"
    v2 = upload(writer, targz({"main.tf": MAIN_TF + "\n# more\n"}))
    assert v2["number"] == 2 and v2["current"] is True and v2["message"] is None
    listed = reader.get(f"{WS}/code-versions").json()
    assert [(v["number"], v["current"]) for v in listed] == [(2, True), (1, False)]
    assert reader.get(f"{WS}/code-versions/1").json() == {**v1, "current": False}
    archive = reader.get(f"{WS}/code-versions/1/archive")
    assert archive.status_code == 200 and archive.content == data
    assert archive.headers["content-type"] == "application/gzip"
    ws = reader.get(WS).json()
    assert ws["current_code_version"] == 2 and ws["source"] == "code"
    assert reader.get(f"{WS}/code-versions/3").status_code == 404
    assert reader.get(f"{WS}/code-versions/3/archive").status_code == 404
    assert reader.get(f"{API}/shop/nope/code-versions").status_code == 404


def test_compare_and_rollback(admin: TestClient) -> None:
    make_workspace(admin)
    upload(admin, targz({"main.tf": "a = 1\n", "old.tf": "x", "logo.png": b"\x00\x01"}))
    upload(admin, targz({"main.tf": "a = 2\n", "new.tf": "y", "logo.png": b"\x00\x02"}))
    resp = admin.get(f"{WS}/code-versions/compare", params={"from": 1, "to": 2})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["from"] == 1 and out["to"] == 2
    assert out["added"] == ["new.tf"] and out["removed"] == ["old.tf"]
    changed = {c["path"]: c["diff"] for c in out["changed"]}
    assert changed["logo.png"] == "binary files differ"
    assert "-a = 1\n+a = 2\n" in changed["main.tf"]
    assert admin.get(f"{WS}/code-versions/compare", params={"from": 1, "to": 9}).status_code == 404
    assert admin.get(f"{WS}/code-versions/compare", params={"from": 1}).status_code == 422

    resp = admin.post(f"{WS}/code-versions/1/rollback")
    assert resp.status_code == 200 and resp.json()["number"] == 1 and resp.json()["current"] is True
    assert admin.get(WS).json()["current_code_version"] == 1
    assert admin.post(f"{WS}/code-versions/7/rollback").status_code == 404
    v3 = upload(admin, targz({"main.tf": "a = 3\n"}))
    assert v3["number"] == 3  # numbers keep counting after a rollback
    actions = [
        r["action"] for r in admin.get("/api/v1/audit-logs", params={"action": "workspaces."}).json()["items"]
    ]
    assert actions.count("workspaces.code_version.upload") == 3
    assert "workspaces.code_version.rollback" in actions


def test_bad_uploads_are_refused(admin: TestClient) -> None:
    make_workspace(admin)
    path = f"{WS}/code-versions"
    cases = [
        (targz({"../x.tf": "x"}), "'..' components"),
        (targz({"/etc/x.tf": "x"}), "absolute paths"),
        (targz(members=[member("l", tarfile.SYMTYPE, "../../etc/passwd")]), "points outside"),
        (targz(members=[member("dev", tarfile.CHRTYPE)]), "device files"),
        (b"not gzip at all", "not a gzip-compressed tar"),
        (b"", "not a gzip-compressed tar"),
    ]
    for data, message in cases:
        resp = admin.post(path, content=data, headers={"Content-Type": "application/gzip"})
        assert resp.status_code == 400, resp.text
        assert message in resp.json()["error"]["message"]
    assert admin.post(f"{API}/shop/nope/code-versions", content=targz({"a.tf": "x"})).status_code == 404
    assert admin.get(f"{WS}/code-versions").json() == []
    assert admin.get(WS).json()["current_code_version"] is None


def test_too_big_uploads_are_refused(admin: TestClient) -> None:
    make_workspace(admin)
    admin.app.state.workspaces = WorkspaceSettings(  # type: ignore[attr-defined]
        workspace_code_max_bytes=2000, workspace_code_max_unpacked_bytes=50_000, workspace_code_max_files=5
    )
    big = targz({"blob.bin": bytes(range(256)) * 40 + b"x".join(str(i).encode() for i in range(1000))})
    assert len(big) > 2000
    resp = admin.post(f"{WS}/code-versions", content=big)
    assert resp.status_code == 413 and "limit" in resp.json()["error"]["message"]
    # without Content-Length the stream is cut at the limit
    resp = admin.post(f"{WS}/code-versions", content=iter([big[:1500], big[1500:]]))
    assert resp.status_code == 413
    bomb = targz({"zeros": b"\x00" * 60_000})
    assert len(bomb) < 2000
    resp = admin.post(f"{WS}/code-versions", content=bomb)
    assert resp.status_code == 413 and "unpacks to more than 50000 bytes" in resp.text
    many = targz({f"f{i}.tf": "" for i in range(6)})
    assert admin.post(f"{WS}/code-versions", content=many).status_code == 413
    assert admin.get(f"{WS}/code-versions").json() == []


def test_message_is_limited(admin: TestClient) -> None:
    make_workspace(admin)
    resp = admin.post(f"{WS}/code-versions", params={"message": "m" * 4097}, content=targz({"a.tf": ""}))
    assert resp.status_code == 422
    assert json.loads(resp.text)["error"]["code"] == "validation_failed"
