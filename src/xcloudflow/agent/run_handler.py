"""The agent's `terraform.plan` and `terraform.apply` jobs: one run stage in a fresh directory.

A handler fetches the run bundle (GET /jobs/{id}/run), lays out a new run directory under the agent's
data dir (the code version extracted safely, the generated files, the variables, an HTTP backend
override), runs the stage's hooks and Terraform as child processes, uploads the plan, and reports the
result the server expects (see the runs contract). The run directory is always removed at the end:
nothing of a run (variables, state, plan) stays on the agent, except a state Terraform could not
save, which is kept under <data dir>/backups so it is not lost.

Every line sent to the server goes through the run's Masker; Terraform's backend password is the
job token, given only as TF_HTTP_PASSWORD in the child's environment.
"""

from __future__ import annotations

import functools
import io as _io
import json
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from xcloudflow.agent.client import AgentApiError, AgentClient, JobSpec
from xcloudflow.agent.hooks import HookRunner
from xcloudflow.agent.masking import Masker
from xcloudflow.agent.runner import Handler, JobIO, JobOutcome
from xcloudflow.agent.sandbox import job_sandbox
from xcloudflow.agent.terraform import (
    PLAN_FILE,
    Backend,
    Completed,
    Terraform,
    classify,
    default_data_dir,
    error_summary,
    is_stale,
    plan_lock_file,
    plan_prior_state,
    summarize_plan,
)
from xcloudflow.tarlinks import LinkEscape, TreeLinks

BACKEND_OVERRIDE = "xcf_backend_override.tf"
BACKEND_OVERRIDE_HCL = 'terraform {\n  backend "http" {}\n}\n'
TFVARS_JSON = "terraform.tfvars.json"
HCL_TFVARS = "xcf.auto.tfvars"
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class RunIO(Protocol):
    """What a run needs of its job: JobIO, or anything that logs, uploads and carries a cancel event."""

    cancelled: threading.Event

    def log(self, text: str) -> None: ...

    def upload(self, name: str, data: bytes) -> None: ...


MAX_EXTRACTED_BYTES = 1024 * 1024 * 1024


class RunSetupError(Exception):
    """The bundle or the code cannot be laid out as a run directory (permanent)."""


class UnsafeArchive(Exception):
    """A code archive member that would land outside the run directory, or is not a plain file."""


def safe_extract(archive: bytes, dest: Path, *, max_bytes: int = MAX_EXTRACTED_BYTES) -> int:
    """Extract a .tar.gz into dest; refuse it whole if any member is unsafe. Returns the file count.

    The server checked the archive on upload; the agent checks again, since it is the one writing
    to its disk (and archives stored before a server-side check existed still reach it): no absolute
    paths, no '..', no duplicates, no devices or fifos, no more than max_bytes in all, and every
    symlink, every member's directory and every hard link's target resolved through the archive's
    symlinks as the kernel will (`xcloudflow.tarlinks`, the server's function) must stay inside.
    Messages name members as the archive spells them, never a path of this machine.
    """
    try:
        tar = tarfile.open(fileobj=_io.BytesIO(archive), mode="r:*")  # noqa: SIM115 (closed below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UnsafeArchive(f"not a readable .tar.gz: {exc}") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UnsafeArchive(f"not a readable .tar.gz: {exc}") from exc
        _check_members(members, max_bytes)
        try:
            # The stdlib's "data" filter checks the same things again as it writes.
            tar.extractall(dest, filter="data")
        except tarfile.TarError as exc:
            # Its message holds the destination path ("'/tmp/.../x', which is outside the
            # destination"): name the member only.
            member = getattr(getattr(exc, "tarinfo", None), "name", None)
            shown = f"{member!r} " if member else "a member "
            raise UnsafeArchive(f"{shown}was refused while extracting ({type(exc).__name__})") from None
        return sum(1 for m in members if m.isfile())


def _check_members(members: list[tarfile.TarInfo], max_bytes: int) -> None:
    kinds: dict[str, bool] = {}  # path -> is a directory
    links: dict[str, str] = {}  # symlink path -> target as written
    total = 0
    for member in members:
        name = "/".join(_member_parts(member.name))
        if member.isdev() or member.isfifo():
            raise UnsafeArchive(f"{member.name!r} is a device or fifo")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchive(f"{member.name!r} is not a file, directory or link")
        if not name and not member.isdir():
            raise UnsafeArchive(f"{member.name!r} has no name")
        if name in kinds and not (kinds[name] and member.isdir()):
            raise UnsafeArchive(f"{member.name!r} appears twice in the archive")
        kinds[name] = member.isdir()
        if member.issym():
            if "\x00" in member.linkname or PurePosixPath(member.linkname).is_absolute():
                raise UnsafeArchive(f"symlink {member.name!r} -> {member.linkname!r} leads out of the tree")
            links[name] = member.linkname
        if member.islnk():
            _member_parts(member.linkname)
        total += max(member.size, 0)
        if total > max_bytes:
            raise UnsafeArchive(f"it unpacks to more than {max_bytes} bytes")
    tree = TreeLinks(links)
    for member in members:
        name = "/".join(_member_parts(member.name))
        # A member written through a link lands elsewhere than its name says: refused (as on upload),
        # so every link's name is where it is, and resolving by names is sound.
        for parent in PurePosixPath(name).parents:
            if str(parent) in links:
                raise UnsafeArchive(f"{member.name!r} goes through the symlink {str(parent)!r}")
        try:
            if member.issym():
                tree.resolve(name)
            if member.islnk():
                tree.resolve("/".join(_member_parts(member.linkname)))
        except LinkEscape as exc:
            what = "symlink" if member.issym() else "hard link" if member.islnk() else "member"
            arrow = f" -> {member.linkname!r}" if member.issym() or member.islnk() else ""
            raise UnsafeArchive(f"{what} {member.name!r}{arrow} leads out of the tree: {exc}") from None


def _member_parts(name: str) -> list[str]:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith("~") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchive(f"{name!r} is an absolute path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{name!r} contains '..'")
    return parts


# ------------------------------------------------------------ entry points (job handlers)


def terraform_handlers(data_dir: Path | None = None) -> dict[str, Handler]:
    """The two job kinds with a given agent data dir (default: `default_data_dir()` when a job runs)."""
    return {
        "terraform.plan": functools.partial(_handle, operation="plan", data_dir=data_dir),
        "terraform.apply": functools.partial(_handle, operation="apply", data_dir=data_dir),
    }


def terraform_plan(job: JobSpec, io: JobIO) -> JobOutcome:
    return _handle(job, io, operation="plan", data_dir=None)


def terraform_apply(job: JobSpec, io: JobIO) -> JobOutcome:
    return _handle(job, io, operation="apply", data_dir=None)


def _handle(job: JobSpec, io: JobIO, *, operation: str, data_dir: Path | None) -> JobOutcome:
    # JobIO keeps the agent's client private; the run's files come through it with the job token.
    client: AgentClient = io.client
    masker = Masker([job.token])
    try:
        bundle = client.run_bundle(job)
        masker = Masker([*(bundle.get("sensitive") or []), job.token])
        code = client.code_archive(job) if bundle.get("code") else None
        plan = client.plan_file(job) if operation == "apply" else None
    except AgentApiError as exc:
        retryable = exc.status == 0 or exc.status >= 500
        return JobOutcome.failure(
            masker.mask(f"cannot fetch the run's {operation} inputs from the server: {exc.message}"),
            result={"error_class": "transient" if retryable else "permanent"},
            retryable=retryable,
        )
    run = Run(
        bundle=bundle,
        io=io,
        data_dir=data_dir or default_data_dir(),
        server_url=client.server_url,
        token=job.token,
        code=code,
    )
    return run.apply(plan or b"") if operation == "apply" else run.plan()


# ------------------------------------------------------------ one run stage


@dataclass
class Run:
    """One plan or apply of a run, from its bundle; `plan()` / `apply()` return the job outcome."""

    bundle: Mapping[str, Any]
    io: RunIO
    data_dir: Path
    server_url: str = ""
    token: str | None = None  # the job token: backend password, and masked
    code: bytes | None = None
    masker: Masker = field(init=False)
    # The run directory (code, generated files, Terraform's own files): the only writable path of the
    # run's sandboxed commands.
    root: Path | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        secrets = [str(s) for s in self.bundle.get("sensitive") or [] if isinstance(s, str)]
        self.masker = Masker([*secrets, *([self.token] if self.token else [])])
        spec = self.bundle.get("run") or {}
        self.run_spec: Mapping[str, Any] = spec
        self.run_id = str(spec.get("id", "run"))
        self.grace = float(spec.get("cancel_grace_seconds") or 20)
        ws = self.bundle.get("workspace") or {}
        self.workspace = f"{ws.get('project', '')}/{ws.get('name', '')}"
        self.terraform_bin = ws.get("terraform_bin") or None
        self.working_directory = str(ws.get("working_directory") or "")
        self.env = {str(k): str(v) for k, v in (self.bundle.get("env") or {}).items()}
        self.sandbox = job_sandbox(self.data_dir, say=self.say)

    def say(self, text: str) -> None:
        self.io.log(self.masker.mask(text))

    # ------------------------------------------------------------ layout

    def _layout(self, root: Path) -> Path:
        """Extract the code, write the generated and variable files; the working directory."""
        source = root / "src"
        source.mkdir()
        if self.code is not None:
            try:
                count = safe_extract(self.code, source)
            except UnsafeArchive as exc:
                raise RunSetupError(f"the code archive was refused: {exc}") from exc
            self.say(
                f"xcf: extracted {count} files of code version {(self.bundle.get('code') or {}).get('number')}"
            )
        workdir = _inside(source, self.working_directory, what="working_directory")
        workdir.mkdir(parents=True, exist_ok=True)
        for name, text in (self.bundle.get("files") or {}).items():
            target = _inside(workdir, str(name), what="generated file")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(text))
        tfvars = self.bundle.get("tfvars") or {}
        if tfvars:
            (workdir / TFVARS_JSON).write_text(json.dumps(tfvars, indent=2))
        hcl_vars = self.bundle.get("hcl_vars") or {}
        if hcl_vars:
            lines = []
            for key, value in hcl_vars.items():
                if not _VAR_NAME.match(str(key)):
                    raise RunSetupError(f"variable name {key!r} is not a Terraform identifier")
                lines.append(f"{key} = {value}")
            (workdir / HCL_TFVARS).write_text("\n".join(lines) + "\n")
        if self.bundle.get("backend"):
            (workdir / BACKEND_OVERRIDE).write_text(BACKEND_OVERRIDE_HCL)
        return workdir

    def _terraform(self, workdir: Path) -> Terraform:
        return Terraform(
            workdir=workdir,
            data_dir=self.data_dir,
            on_line=self.say,
            masker=self.masker,
            env=self.env,
            password=self.token if self.bundle.get("backend") else None,
            terraform_bin=self.terraform_bin,
            cancel=self.io.cancelled,
            grace_seconds=self.grace,
            root=self.root,
            sandbox=self.sandbox,
        )

    def _backend(self) -> Backend | None:
        backend = self.bundle.get("backend")
        return Backend.from_bundle(self.server_url, backend) if backend else None

    def _hooks(self, workdir: Path) -> HookRunner:
        return HookRunner(
            self.bundle.get("hooks") or [],
            workdir=workdir,
            env=self.env,
            log=self.say,
            masker=self.masker,
            cancel=self.io.cancelled,
            sandbox=self.sandbox.with_paths(writable=[self.root or workdir]),
        )

    def _context(self, **extra: Any) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_number": self.run_spec.get("number"),
            "kind": self.run_spec.get("kind"),
            "operation": self.run_spec.get("operation"),
            "plan_mode": self.run_spec.get("plan_mode", "normal"),
            "targets": list(self.run_spec.get("targets") or []),
            "workspace": self.workspace,
            **extra,
        }

    def _in_run_dir(self, body: Any) -> JobOutcome:
        runs = self.data_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"run-{_safe(self.run_id)}-", dir=runs))
        self.root = root
        try:
            try:
                workdir = self._layout(root)
            except RunSetupError as exc:
                return self._failed(str(exc), "permanent")
            outcome: JobOutcome = body(workdir)
            return outcome
        finally:
            shutil.rmtree(root, ignore_errors=True)

    # ------------------------------------------------------------ outcomes

    def _failed(
        self, message: str, error_class: str, *, retryable: bool = False, **result: Any
    ) -> JobOutcome:
        message = self.masker.mask(message)
        self.say(f"xcf: {message}")
        return JobOutcome.failure(message, result={"error_class": error_class, **result}, retryable=retryable)

    def _terraform_failed(self, what: str, done: Completed, *, retry_ok: bool, **result: Any) -> JobOutcome:
        text = done.text
        stale = is_stale(text)
        error_class = "permanent" if stale else classify(text)
        if stale:
            result["stale"] = True
        summary = error_summary(done.lines)
        return self._failed(
            f"terraform {what} failed (exit code {done.exit_code}): {summary}",
            error_class,
            retryable=retry_ok and error_class == "transient",
            **result,
        )

    def _canceled(self, what: str, done: Completed | None = None, extra: str = "") -> JobOutcome:
        if done is None:
            message = f"canceled before {what}"
        elif done.killed:
            message = f"canceled during {what}: Terraform did not stop within {self.grace:g}s and was killed"
        else:
            message = f"canceled during {what}: Terraform was interrupted and stopped gracefully"
        message = self.masker.mask(message + extra)
        self.say(f"xcf: {message}")
        return JobOutcome.canceled(message)

    # ------------------------------------------------------------ plan

    def plan(self) -> JobOutcome:
        return self._in_run_dir(self._plan)

    def _prepare(self, workdir: Path, operation: str) -> tuple[HookRunner, Terraform, JobOutcome | None]:
        """The pre_<operation> hooks, then `terraform init`: the outcome to stop with, if any."""
        hooks = self._hooks(workdir)
        tf = self._terraform(workdir)
        if self.io.cancelled.is_set():
            return hooks, tf, self._canceled(f"the {operation}")
        failed = hooks.run_stage(f"pre_{operation}", self._context())
        if failed:
            cancelled = self.io.cancelled.is_set()
            return (
                hooks,
                tf,
                self._canceled(f"pre_{operation} hooks") if cancelled else self._failed(failed, "permanent"),
            )
        self.say("xcf: terraform init")
        done = tf.init(self._backend())
        if done.interrupted:
            return hooks, tf, self._canceled("terraform init", done)
        if done.exit_code != 0:  # nothing was touched yet: safe to repeat when transient
            return hooks, tf, self._terraform_failed("init", done, retry_ok=True)
        return hooks, tf, None

    def _plan(self, workdir: Path) -> JobOutcome:
        hooks, tf, stopped = self._prepare(workdir, "plan")
        if stopped is not None:
            return stopped

        mode = str(self.run_spec.get("plan_mode") or "normal")
        targets = [str(t) for t in self.run_spec.get("targets") or []]
        detailed = bool(self.run_spec.get("detailed_exitcode", True))
        self.say(f"xcf: terraform plan ({mode}{', targets ' + ', '.join(targets) if targets else ''})")
        try:
            done = tf.plan(mode=mode, targets=targets, detailed_exitcode=detailed)
        except ValueError as exc:
            return self._failed(str(exc), "permanent")
        if done.interrupted:
            return self._canceled("terraform plan", done)
        if done.exit_code not in (0, 2) or (done.exit_code == 2 and not detailed):
            return self._terraform_failed("plan", done, retry_ok=True)

        serial, lineage = plan_prior_state(workdir / PLAN_FILE)
        if detailed and done.exit_code == 0:
            # No changes (Terraform's detailed exit code says so): nothing can be applied, so neither the
            # plan file nor its JSON is worth a `terraform show` and an upload.
            summary = summarize_plan({})
            has_changes = False
        else:
            shown, document = tf.show_json(PLAN_FILE)
            if shown.interrupted:
                return self._canceled("terraform show", shown)
            if document is None:
                return self._terraform_failed("show -json", shown, retry_ok=True)
            summary = summarize_plan(document)
            has_changes = (
                done.exit_code == 2
                if detailed
                else any(summary.counts().values()) or bool(summary.output_changes)
            )
            self.io.upload("plan.bin", (workdir / PLAN_FILE).read_bytes())
            self.io.upload("plan.json", json.dumps(self.masker.mask_plan(document)).encode())
        counts = summary.counts()
        self.say(
            f"xcf: plan: {counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy"
            + (f", {counts['import']} to import" if counts["import"] else "")
            + ("" if has_changes else " (no changes)")
        )
        result: dict[str, Any] = {
            "has_changes": has_changes,
            "summary": counts,
            "output_changes": summary.output_changes,
            "resource_drift": summary.resource_drift,
            "state_serial": serial,
            "state_lineage": lineage,
        }
        failed = hooks.run_stage("post_plan", self._context(has_changes=has_changes, summary=counts))
        if failed:
            if self.io.cancelled.is_set():
                return self._canceled("post_plan hooks")
            return self._failed(
                failed, "permanent", **{k: v for k, v in result.items() if k != "error_class"}
            )
        return JobOutcome.success(result)

    # ------------------------------------------------------------ apply

    def apply(self, plan: bytes) -> JobOutcome:
        return self._in_run_dir(functools.partial(self._apply, plan))

    def _apply(self, plan: bytes, workdir: Path) -> JobOutcome:
        plan_path = workdir / PLAN_FILE
        plan_path.write_bytes(plan)
        serial, lineage = plan_prior_state(plan_path)
        expected = self.bundle.get("plan") or {}
        if expected.get("state_lineage") and (serial, lineage) != (
            expected.get("state_serial"),
            expected.get("state_lineage"),
        ):
            return self._failed(
                f"the plan downloaded for run {self.run_id} was made against state {lineage} serial {serial}, "
                f"not the planned {expected.get('state_lineage')} serial {expected.get('state_serial')}",
                "permanent",
                stale=True,
            )
        lock = plan_lock_file(plan_path)
        if lock is not None:  # init must choose the providers the plan was made with
            (workdir / ".terraform.lock.hcl").write_bytes(lock)
        hooks, tf, stopped = self._prepare(workdir, "apply")
        if stopped is not None:
            return stopped

        self.say("xcf: terraform apply")
        done = tf.apply(PLAN_FILE)
        backup = tf.backup_errored_state(self.run_id)
        if backup is not None:
            self.say(f"xcf: Terraform could not save the state; it is kept at {backup}")
            message = (
                f"terraform apply could not save the state after retries; the backup is at {backup} on "
                f"the agent (push it with `terraform state push` once the server is reachable): "
                f"{error_summary(done.lines)}"
            )
            if done.interrupted:
                return self._canceled("terraform apply", done, extra=f"; the state backup is at {backup}")
            return self._failed(message, classify(done.text), state_backup=str(backup))
        if done.interrupted:
            return self._canceled("terraform apply", done)
        if done.exit_code != 0:
            return self._terraform_failed("apply", done, retry_ok=False)

        shown, document = tf.output_json()
        if document is None:
            return self._terraform_failed("output -json", shown, retry_ok=False)
        outputs = {
            str(name): {
                "value": None if out.get("sensitive") else self.masker.mask_value(out.get("value")),
                "sensitive": bool(out.get("sensitive")),
            }
            for name, out in document.items()
            if isinstance(out, dict)
        }
        self.say(f"xcf: apply complete: {len(outputs)} outputs")
        failed = hooks.run_stage("post_apply", self._context(outputs=outputs))
        if failed:
            if self.io.cancelled.is_set():
                return self._canceled("post_apply hooks")
            return self._failed(failed, "permanent", outputs=outputs)
        return JobOutcome.success({"outputs": outputs})


def _inside(root: Path, relative: str, *, what: str) -> Path:
    """root/relative, refusing absolute paths and '..' (the bundle comes from the server, check anyway)."""
    if not relative:
        return root
    posix = PurePosixPath(relative.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or relative.startswith("~"):
        raise RunSetupError(f"{what} {relative!r} must be a relative path inside the configuration")
    target = root.joinpath(*[p for p in posix.parts if p not in ("", ".")])
    resolved = target.resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise RunSetupError(f"{what} {relative!r} leads out of the configuration")
    return target


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64] or "run"
