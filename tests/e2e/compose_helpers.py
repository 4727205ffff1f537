"""Helpers of the control-plane end-to-end tests: copies of examples/platform as real git repositories,
edits committed to them, and waiting for ChangeSets."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.conftest import host_path
from tests.gitrepo import EXAMPLE, commit_all, init_repo

TIMEOUT = 240.0


def env_name() -> str:
    return "t" + secrets.token_hex(4)


def make_repo(tmp_path: Path, *, env: str, template: str = "dev", config_dir: Path | None = None) -> Path:
    """examples/platform as a git repository with one commit, plus environment `env` made from `template`."""
    repo = tmp_path / "platform"
    shutil.copytree(EXAMPLE, repo)
    doc = yaml.safe_load((repo / "envs" / template / "environment.yaml").read_text())
    doc["metadata"]["name"] = env
    for entry in doc["spec"]["compositions"]:
        if entry["ref"].endswith("app-config"):
            entry["inputs"] = {
                **(entry.get("inputs") or {}),
                "configDir": str(config_dir or host_path(tmp_path, "conf")),
            }
    (repo / "envs" / env).mkdir()
    (repo / "envs" / env / "environment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    preview = yaml.safe_load((repo / "compositions/ephemeral/preview.yaml").read_text())
    preview["spec"].pop("environments", None)
    (repo / "compositions/ephemeral/preview.yaml").write_text(yaml.safe_dump(preview, sort_keys=False))
    init_repo(repo)
    return repo


def edit_yaml(repo: Path, path: str, change: Any) -> None:
    file = repo / path
    doc = yaml.safe_load(file.read_text())
    change(doc)
    file.write_text(yaml.safe_dump(doc, sort_keys=False))


def env_inputs(repo: Path, env: str, ref_suffix: str, **inputs: Any) -> None:
    def change(doc: dict[str, Any]) -> None:
        for entry in doc["spec"]["compositions"]:
            if entry["ref"].endswith(ref_suffix):
                entry["inputs"] = {**(entry.get("inputs") or {}), **inputs}

    edit_yaml(repo, f"envs/{env}/environment.yaml", change)


def only(repo: Path, env: str, *suffixes: str) -> None:
    """Keep only these compositions in the environment."""

    def change(doc: dict[str, Any]) -> None:
        doc["spec"]["compositions"] = [c for c in doc["spec"]["compositions"] if c["ref"].endswith(suffixes)]

    edit_yaml(repo, f"envs/{env}/environment.yaml", change)


def commit(repo: Path, message: str) -> str:
    return commit_all(repo, message)


def plan(api: httpx.Client, repo: Path, env: str, *, apply: bool = False, ok: int = 201) -> dict[str, Any]:
    resp = api.post(
        "/api/v1/compose/changesets", json={"repo": str(repo), "environment": env, "apply": apply}
    )
    assert resp.status_code == ok, resp.text
    body: dict[str, Any] = resp.json()
    return body


def show(api: httpx.Client, cs_id: str) -> dict[str, Any]:
    resp = api.get(f"/api/v1/compose/changesets/{cs_id}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def wait_for(
    api: httpx.Client, cs_id: str, check: Any, what: str, timeout: float = TIMEOUT
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    cs = show(api, cs_id)
    while not check(cs):
        if time.monotonic() > deadline:
            nodes = {n["key"]: (n["status"], n["error"], n["waiting_for"]) for n in cs["nodes"]}
            raise AssertionError(
                f"changeset {cs_id} not {what} after {timeout:.0f}s: {cs['status']} {cs['error']} {nodes}"
            )
        time.sleep(0.5)
        cs = show(api, cs_id)
    return cs


def wait_status(api: httpx.Client, cs_id: str, *statuses: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    return wait_for(api, cs_id, lambda cs: cs["status"] in statuses, "/".join(statuses), timeout)


def node(cs: dict[str, Any], key: str) -> dict[str, Any]:
    found = [n for n in cs["nodes"] if n["key"] == key]
    assert found, f"no node {key} in {[n['key'] for n in cs['nodes']]}"
    result: dict[str, Any] = found[0]
    return result


def user_client(api: httpx.Client, base_url: str, name: str, role: str) -> httpx.Client:
    resp = api.post("/api/v1/users", json={"name": name, "role": role})
    assert resp.status_code in (201, 409), resp.text
    token = api.post("/api/v1/tokens", json={"name": f"{name}-{secrets.token_hex(3)}", "user": name})
    assert token.status_code == 201, token.text
    return httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token.json()['token']}"}, timeout=60
    )
