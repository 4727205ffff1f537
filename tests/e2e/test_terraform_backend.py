"""The real Terraform CLI (and hand-written Pulumi documents) against a real `xcf server`.

Every test runs once per database backend (see conftest.py) and uses its own project/stack. Terraform
talks to the server through the `http` backend: state, lock and unlock addresses all on the state URL
with the LOCK/UNLOCK methods, the API token as password through TF_HTTP_PASSWORD.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TerraformRunner, XcfServer, output_of

pytestmark = pytest.mark.e2e

LOCK_WAIT = 60.0  # upper bound for "the server shows the lock", never asserted as a duration
SLOW_APPLY = 'provisioner "local-exec" {\n    command = "sleep 8"\n  }'


# --------------------------------------------------------------------------- helpers


def backend_block(url: str) -> str:
    return f"""
terraform {{
  backend "http" {{
    address        = "{url}"
    lock_address   = "{url}"
    unlock_address = "{url}"
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
    username       = "e2e"
  }}
}}
"""


def simple_config(value: str) -> str:
    """Two terraform_data resources and an output, all derived from `value`."""
    return f"""
resource "terraform_data" "first" {{
  input = "{value}"
}}

resource "terraform_data" "second" {{
  input = "${{terraform_data.first.output}}-second"
}}

output "value" {{
  value = terraform_data.second.output
}}
"""


def resource(name: str, value: str, extra: str = "") -> str:
    return f'\nresource "terraform_data" "{name}" {{\n  input = "{value}"\n  {extra}\n}}\n'


class Workspace:
    """One Terraform working directory bound to a stack on the server."""

    def __init__(
        self,
        server: XcfServer,
        terraform: TerraformRunner,
        path: Path,
        project: str,
        stack: str,
        password: str | None = None,
    ) -> None:
        self.server = server
        self.terraform = terraform
        self.path = path
        self.project = project
        self.stack = stack
        self.password = server.token if password is None else password
        path.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return self.server.state_url(self.project, self.stack)

    def write(self, body: str, *, backend: bool = True) -> None:
        (self.path / "main.tf").write_text((backend_block(self.url) if backend else "") + body)

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.terraform(self.path, *args, password=self.password, **kwargs)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args)
        assert proc.returncode == 0, f"terraform {' '.join(args)} failed:\n{output_of(proc)}"
        return proc

    def init(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.ok("init", "-no-color", "-input=false", *extra)

    def apply(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.ok("apply", "-auto-approve", "-no-color", "-input=false", *extra)

    def apply_args(self, *extra: str) -> tuple[str, ...]:
        return ("apply", "-auto-approve", "-no-color", "-input=false", *extra)

    def plan_exit(self) -> subprocess.CompletedProcess[str]:
        return self.run("plan", "-detailed-exitcode", "-no-color", "-input=false")

    def start_apply(self, *extra: str) -> subprocess.Popen[str]:
        return self.terraform.start(self.path, *self.apply_args(*extra), password=self.password)


def head(server: XcfServer, project: str, stack: str, tool: str = "terraform") -> dict[str, Any]:
    info = server.stack(project, stack, tool)
    assert info is not None, f"stack {tool}/{project}/{stack} not found on the server"
    return info


def head_state(server: XcfServer, project: str, stack: str) -> dict[str, Any]:
    resp = httpx.get(server.state_url(project, stack), auth=("e2e", server.token), timeout=30)
    assert resp.status_code == 200, f"{resp.status_code} {resp.text}"
    state: dict[str, Any] = resp.json()
    return state


def addresses(state: dict[str, Any]) -> set[str]:
    return {f"{r['type']}.{r['name']}" for r in state.get("resources", []) if r.get("mode") == "managed"}


def wait_for_lock(
    server: XcfServer, project: str, stack: str, holder: subprocess.Popen[str]
) -> dict[str, Any]:
    """Poll the API until the stack shows a lock; fail if `holder` exits first."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        info = server.stack(project, stack)
        if info is not None and info.get("lock"):
            lock: dict[str, Any] = info["lock"]
            return lock
        if holder.poll() is not None:
            out, _ = holder.communicate()
            pytest.fail(
                f"the lock holder exited ({holder.returncode}) before the server showed a lock:\n{out}"
            )
        if time.monotonic() > deadline:
            holder.kill()
            out, _ = holder.communicate()
            pytest.fail(f"the server never showed the lock of the running apply; its output:\n{out}")
        time.sleep(0.1)


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"terraform did not finish:\n{out}")
    return out


def audit_entries(server: XcfServer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with server.client() as c:
        for _ in range(100):
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            resp = c.get("/api/v1/audit-logs", params=params)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return items


def create_token(server: XcfServer, role: str) -> str:
    user = f"{role}-{secrets.token_hex(4)}"
    with server.client() as c:
        resp = c.post("/api/v1/users", json={"name": user, "role": role})
        assert resp.status_code == 201, resp.text
        resp = c.post("/api/v1/tokens", json={"name": "ci", "user": user})
        assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    assert token.startswith("xcf_")
    return token


@pytest.fixture
def ws(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, names: tuple[str, str]
) -> Workspace:
    project, stack = names
    return Workspace(xcf_server, terraform, tmp_path / "main", project, stack)


# --------------------------------------------------------------------------- init, apply, plan


def test_init_and_apply_create_version_1(ws: Workspace, xcf_server: XcfServer) -> None:
    ws.write(simple_config("alpha"))
    init = ws.init()
    assert 'Successfully configured the backend "http"' in init.stdout, output_of(init)
    apply = ws.apply()
    assert "Apply complete! Resources: 2 added, 0 changed, 0 destroyed." in apply.stdout, output_of(apply)

    info = head(xcf_server, ws.project, ws.stack)
    assert info["tool"] == "terraform"
    assert info["head_version"] == 1
    assert info["lock"] is None  # Terraform unlocked after the apply
    versions = xcf_server.versions(ws.project, ws.stack)
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["serial"] == info["serial"]
    assert versions[0]["lineage"] == info["lineage"]

    # The backend serves back what Terraform wrote, and it is the stored version 1.
    state = head_state(xcf_server, ws.project, ws.stack)
    assert addresses(state) == {"terraform_data.first", "terraform_data.second"}
    assert state["lineage"] == info["lineage"] and state["serial"] == info["serial"]
    assert json.loads(xcf_server.version_content(ws.project, ws.stack, 1)) == state

    out = ws.ok("output", "-raw", "value")
    assert out.stdout == "alpha-second"


def test_plan_without_changes_exits_0_and_writes_nothing(ws: Workspace, xcf_server: XcfServer) -> None:
    ws.write(simple_config("alpha"))
    ws.init()
    ws.apply()
    before = head(xcf_server, ws.project, ws.stack)

    plan = ws.plan_exit()
    assert plan.returncode == 0, output_of(plan)
    assert "No changes." in plan.stdout

    after = head(xcf_server, ws.project, ws.stack)
    assert after["head_version"] == before["head_version"] == 1
    assert after["etag"] == before["etag"]
    assert after["lock"] is None

    # and a changed configuration is a plan with changes (exit 2), still without a write
    ws.write(simple_config("beta"))
    plan = ws.plan_exit()
    assert plan.returncode == 2, output_of(plan)
    assert head(xcf_server, ws.project, ws.stack)["head_version"] == 1


def test_second_apply_creates_version_2(ws: Workspace, xcf_server: XcfServer) -> None:
    ws.write(simple_config("alpha"))
    ws.init()
    ws.apply()
    v1 = head(xcf_server, ws.project, ws.stack)

    ws.write(simple_config("beta"))
    apply = ws.apply()
    assert "Resources: 0 added, 2 changed, 0 destroyed." in apply.stdout, output_of(apply)

    v2 = head(xcf_server, ws.project, ws.stack)
    assert v2["head_version"] == 2
    assert v2["serial"] > v1["serial"]
    assert v2["lineage"] == v1["lineage"]
    versions = xcf_server.versions(ws.project, ws.stack)
    assert [v["version"] for v in versions] == [2, 1]  # newest first
    assert versions[0]["serial"] > versions[1]["serial"]
    assert versions[0]["etag"] != versions[1]["etag"]

    with xcf_server.client() as c:
        diff = c.get(f"/api/v1/stacks/terraform/{ws.project}/{ws.stack}/diff", params={"from": 1, "to": 2})
    assert diff.status_code == 200, diff.text
    assert any("terraform_data.first" in a for a in diff.json()["changed"]), diff.json()

    assert ws.ok("output", "-raw", "value").stdout == "beta-second"
    assert ws.plan_exit().returncode == 0


# --------------------------------------------------------------------------- locking


def test_concurrent_apply_is_refused_with_the_holders_lock_id(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, names: tuple[str, str]
) -> None:
    project, stack = names
    a = Workspace(xcf_server, terraform, tmp_path / "a", project, stack)
    b = Workspace(xcf_server, terraform, tmp_path / "b", project, stack)
    a.write(resource("base", "base"))
    a.init()
    a.apply()
    b.write(resource("base", "base") + resource("b", "from-b"))
    b.init()

    a.write(resource("base", "base") + resource("slow", "slow", SLOW_APPLY))
    holder = a.start_apply()
    try:
        lock = wait_for_lock(xcf_server, project, stack, holder)
        assert lock["ID"]
        assert lock["Operation"] == "OperationTypeApply"

        blocked = b.run(*b.apply_args("-lock-timeout=0s"))
        assert holder.poll() is None, "the holder finished before the second apply ran"
    finally:
        out_a = finish(holder)

    combined = blocked.stdout + blocked.stderr
    assert blocked.returncode == 1, output_of(blocked)
    assert "Error acquiring the state lock" in combined, output_of(blocked)
    assert lock["ID"] in combined, output_of(blocked)

    assert holder.returncode == 0, out_a
    assert "Apply complete! Resources: 1 added" in out_a, out_a
    info = head(xcf_server, project, stack)
    assert info["lock"] is None
    assert addresses(head_state(xcf_server, project, stack)) == {"terraform_data.base", "terraform_data.slow"}


def test_lock_timeout_waits_for_the_holder_then_applies(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, names: tuple[str, str]
) -> None:
    project, stack = names
    a = Workspace(xcf_server, terraform, tmp_path / "a", project, stack)
    b = Workspace(xcf_server, terraform, tmp_path / "b", project, stack)
    a.write(resource("base", "base"))
    a.init()
    a.apply()
    # B knows the slow resource too: once it gets the lock it must see A's result and add only "b".
    b.write(resource("base", "base") + resource("slow", "slow", SLOW_APPLY) + resource("b", "from-b"))
    b.init()

    a.write(resource("base", "base") + resource("slow", "slow", SLOW_APPLY))
    holder = a.start_apply()
    waiter: subprocess.Popen[str] | None = None
    try:
        lock = wait_for_lock(xcf_server, project, stack, holder)
        waiter = b.start_apply("-lock-timeout=60s")
        assert holder.poll() is None, "the holder finished before the second apply started"
        out_a = finish(holder)
        out_b = finish(waiter)
    finally:
        for proc in (holder, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert holder.returncode == 0, out_a
    assert waiter.returncode == 0, f"the waiting apply failed (holder lock {lock['ID']}):\n{out_b}"
    assert "Error acquiring the state lock" not in out_b
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out_b, out_b
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in out_b, out_b

    info = head(xcf_server, project, stack)
    assert info["lock"] is None
    state = head_state(xcf_server, project, stack)
    assert addresses(state) == {"terraform_data.base", "terraform_data.slow", "terraform_data.b"}
    serials = [v["serial"] for v in xcf_server.versions(project, stack)]
    assert serials == sorted(serials, reverse=True) and len(set(serials)) == len(serials)


def test_force_unlock_of_a_stale_lock(ws: Workspace, xcf_server: XcfServer) -> None:
    ws.write(simple_config("alpha"))
    ws.init()
    ws.apply()

    ghost_id = str(uuid.uuid4())
    info = {
        "ID": ghost_id,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "ghost@host",
        "Version": "1.15.5",
        "Created": "2026-01-01T00:00:00Z",
        "Path": "",
    }
    resp = httpx.request(
        "LOCK",
        ws.url,
        content=json.dumps(info),
        headers={"Content-Type": "application/json"},
        auth=("ghost", xcf_server.token),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    lock = head(xcf_server, ws.project, ws.stack)["lock"]
    assert lock is not None and lock["ID"] == ghost_id and lock["Who"] == "ghost@host"

    # The stale lock blocks Terraform ...
    ws.write(simple_config("beta"))
    blocked = ws.run(*ws.apply_args("-lock-timeout=0s"))
    assert blocked.returncode == 1, output_of(blocked)
    assert "Error acquiring the state lock" in blocked.stderr + blocked.stdout
    assert ghost_id in blocked.stderr + blocked.stdout
    assert head(xcf_server, ws.project, ws.stack)["head_version"] == 1

    unlock_audit_before = {e["id"] for e in audit_entries(xcf_server) if "unlock" in e["action"]}

    # ... until `terraform force-unlock` removes it.
    forced = ws.run("force-unlock", "-force", ghost_id)
    assert forced.returncode == 0, output_of(forced)
    assert "successfully unlocked" in forced.stdout, output_of(forced)
    assert head(xcf_server, ws.project, ws.stack)["lock"] is None

    new_unlocks = [
        e
        for e in audit_entries(xcf_server)
        if "unlock" in e["action"]
        and e["id"] not in unlock_audit_before
        and f"{ws.project}/{ws.stack}" in (e.get("resource") or "")
    ]
    assert new_unlocks, "the forced unlock is not in the audit log"
    assert any("force" in json.dumps(e).lower() for e in new_unlocks), new_unlocks

    apply = ws.apply()
    assert "Apply complete!" in apply.stdout
    info_after = head(xcf_server, ws.project, ws.stack)
    assert info_after["head_version"] == 2
    assert info_after["lock"] is None

    # Nothing to force-unlock any more: Terraform reports the failure.
    again = ws.run("force-unlock", "-force", ghost_id)
    assert again.returncode != 0, output_of(again)


# --------------------------------------------------------------------------- rollback


def test_rollback_then_plan_is_clean(ws: Workspace, xcf_server: XcfServer) -> None:
    ws.write(simple_config("a"))
    ws.init()
    ws.apply()
    ws.write(simple_config("b"))
    ws.apply()
    versions = {v["version"]: v for v in xcf_server.versions(ws.project, ws.stack)}
    assert set(versions) == {1, 2}

    with xcf_server.client() as c:
        resp = c.post(f"/api/v1/stacks/terraform/{ws.project}/{ws.stack}/rollback", json={"version": 1})
    assert resp.status_code == 201, resp.text

    info = head(xcf_server, ws.project, ws.stack)
    assert info["head_version"] == 3
    assert info["serial"] > versions[2]["serial"]
    assert info["lineage"] == versions[2]["lineage"] == versions[1]["lineage"]
    rolled = head_state(xcf_server, ws.project, ws.stack)
    v1_state = json.loads(xcf_server.version_content(ws.project, ws.stack, 1))
    assert rolled["resources"] == v1_state["resources"]

    # The configuration of version 1 now plans clean; the one of version 2 does not.
    plan = ws.plan_exit()
    assert plan.returncode == 2, output_of(plan)
    ws.write(simple_config("a"))
    plan = ws.plan_exit()
    assert plan.returncode == 0, output_of(plan)
    assert ws.ok("output", "-raw", "value").stdout == "a-second"

    # and Terraform keeps writing on top of the rolled-back head
    ws.write(simple_config("c"))
    ws.apply()
    after = head(xcf_server, ws.project, ws.stack)
    assert after["head_version"] == 4 and after["serial"] > info["serial"]


# --------------------------------------------------------------------------- auth


def test_reader_token_cannot_apply(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, names: tuple[str, str]
) -> None:
    project, stack = names
    owner = Workspace(xcf_server, terraform, tmp_path / "owner", project, stack)
    owner.write(simple_config("alpha"))
    owner.init()
    owner.apply()
    before = head(xcf_server, project, stack)

    reader = Workspace(
        xcf_server,
        terraform,
        tmp_path / "reader",
        project,
        stack,
        password=create_token(xcf_server, "reader"),
    )
    reader.write(simple_config("beta"))
    reader.init()  # reading the state is allowed
    assert reader.ok("output", "-raw", "value").stdout == "alpha-second"

    denied = reader.run(*reader.apply_args())
    combined = denied.stdout + denied.stderr
    assert denied.returncode != 0, output_of(denied)
    assert "Error acquiring the state lock" in combined, output_of(denied)
    assert "invalid auth" in combined or "403" in combined, output_of(denied)

    after = head(xcf_server, project, stack)
    assert after["head_version"] == before["head_version"] == 1
    assert after["etag"] == before["etag"]
    assert after["lock"] is None
    assert len(xcf_server.versions(project, stack)) == 1


def test_bad_token_is_401(
    xcf_server: XcfServer, terraform: TerraformRunner, tmp_path: Path, names: tuple[str, str]
) -> None:
    project, stack = names
    owner = Workspace(xcf_server, terraform, tmp_path / "owner", project, stack)
    owner.write(simple_config("alpha"))
    owner.init()
    owner.apply()
    before = head(xcf_server, project, stack)

    bogus = "xcf_" + secrets.token_hex(24)
    raw = httpx.get(owner.url, auth=("e2e", bogus), timeout=30)
    assert raw.status_code == 401, raw.text
    assert raw.headers.get("www-authenticate", "").lower().startswith("basic")

    intruder = Workspace(xcf_server, terraform, tmp_path / "intruder", project, stack, password=bogus)
    intruder.write(simple_config("beta"))
    # init reads the state (providers found in the state), so it already meets the 401 ...
    init = intruder.run("init", "-no-color", "-input=false")
    assert init.returncode != 0, output_of(init)
    assert "requires auth" in init.stdout + init.stderr, output_of(init)
    # ... and so does an apply.
    denied = intruder.run(*intruder.apply_args())
    assert denied.returncode != 0, output_of(denied)
    assert "requires auth" in denied.stdout + denied.stderr, output_of(denied)

    after = head(xcf_server, project, stack)
    assert after["head_version"] == 1 and after["etag"] == before["etag"] and after["lock"] is None


# --------------------------------------------------------------------------- migration


def test_init_migrate_state_from_local_backend(ws: Workspace, xcf_server: XcfServer) -> None:
    ws.write(simple_config("local"), backend=False)
    ws.init()
    ws.apply()
    local_file = ws.path / "terraform.tfstate"
    local = json.loads(local_file.read_text())
    assert addresses(local) == {"terraform_data.first", "terraform_data.second"}
    assert xcf_server.stack(ws.project, ws.stack) is None

    ws.write(simple_config("local"))
    migrate = ws.init("-migrate-state", "-force-copy")
    assert 'Successfully configured the backend "http"' in migrate.stdout, output_of(migrate)

    # Terraform copies the resources and outputs (it gives the copy a lineage of its own).
    info = head(xcf_server, ws.project, ws.stack)
    assert info["head_version"] >= 1
    remote = head_state(xcf_server, ws.project, ws.stack)
    assert remote["lineage"] == info["lineage"]
    assert remote["resources"] == local["resources"]
    assert remote["outputs"] == local["outputs"]

    plan = ws.plan_exit()
    assert plan.returncode == 0, output_of(plan)
    assert ws.ok("output", "-raw", "value").stdout == "local-second"


# --------------------------------------------------------------------------- Pulumi


def pulumi_document(bucket_tag: str) -> bytes:
    """What `pulumi stack export` writes for a stack with one S3 bucket (hand-written, Pulumi's format)."""
    stack_urn = "urn:pulumi:dev::proj::pulumi:pulumi:Stack::proj-dev"
    provider_urn = "urn:pulumi:dev::proj::pulumi:providers:aws::default"
    provider_id = "6f1c3d5e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"
    doc = {
        "version": 3,
        "deployment": {
            "manifest": {
                "time": "2026-01-02T03:04:05.123456789Z",
                "magic": "2d3f4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
                "version": "v3.100.0",
            },
            "secrets_providers": {
                "type": "passphrase",
                "state": {"salt": "v1:Zm9vYmFyYmF6:v1:c2FsdA==:bWFj"},
            },
            "resources": [
                {
                    "urn": stack_urn,
                    "custom": False,
                    "type": "pulumi:pulumi:Stack",
                    "outputs": {"bucketName": "b-123"},
                },
                {
                    "urn": provider_urn,
                    "custom": True,
                    "id": provider_id,
                    "type": "pulumi:providers:aws",
                    "inputs": {"region": "eu-west-1", "version": "6.18.0"},
                    "outputs": {"region": "eu-west-1", "version": "6.18.0"},
                },
                {
                    "urn": "urn:pulumi:dev::proj::aws:s3/bucket:Bucket::b",
                    "custom": True,
                    "id": "b-123",
                    "type": "aws:s3/bucket:Bucket",
                    "parent": stack_urn,
                    "provider": f"{provider_urn}::{provider_id}",
                    "inputs": {"bucket": "b-123", "tags": {"team": bucket_tag}},
                    "outputs": {
                        "arn": "arn:aws:s3:::b-123",
                        "bucket": "b-123",
                        "id": "b-123",
                        "tags": {"team": bucket_tag},
                    },
                    "dependencies": [],
                },
            ],
        },
    }
    # `pulumi stack export` indents with four spaces and ends with a newline.
    return (json.dumps(doc, indent=4) + "\n").encode()


def test_pulumi_document_round_trip(xcf_server: XcfServer, names: tuple[str, str]) -> None:
    project, stack = names
    url = xcf_server.pulumi_url(project, stack)
    first = pulumi_document("platform")
    second = pulumi_document("data")
    headers = {"Content-Type": "application/json"}

    put = httpx.put(url, content=first, headers=headers, auth=("pulumi", xcf_server.token), timeout=30)
    assert put.is_success, f"{put.status_code} {put.text}"
    got = httpx.get(url, auth=("pulumi", xcf_server.token), timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == first

    bearer = {"Authorization": f"Bearer {xcf_server.token}"}
    put = httpx.put(url, content=second, headers=headers | bearer, timeout=30)
    assert put.is_success, f"{put.status_code} {put.text}"
    got = httpx.get(url, headers=bearer, timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == second

    info = head(xcf_server, project, stack, tool="pulumi")
    assert info["tool"] == "pulumi" and info["head_version"] == 2
    versions = xcf_server.versions(project, stack, tool="pulumi")
    assert [v["version"] for v in versions] == [2, 1]
    assert xcf_server.version_content(project, stack, 1, tool="pulumi") == first
    assert xcf_server.version_content(project, stack, 2, tool="pulumi") == second
    # the Pulumi stack is not a Terraform stack
    assert xcf_server.stack(project, stack, tool="terraform") is None
