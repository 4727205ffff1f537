"""What a run of a workspace needs: its configuration, variables, hooks, generated files, and the
pre-execution checks (configuration present, every required variable set)."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.errors import Invalid
from xcloudflow.keys.keyring import Keyring
from xcloudflow.workspaces import archive
from xcloudflow.workspaces.models import (
    HOOK_STAGES,
    Workspace,
    WorkspaceCodeVersion,
    WorkspaceHook,
    WorkspaceResource,
    WorkspaceVariable,
)
from xcloudflow.workspaces.schemas import RunInputs
from xcloudflow.workspaces.service import address, code_archive, hook_secret, variable_value

_VARIABLE_BLOCK = re.compile(r'^\s*variable\s*"', re.MULTILINE)
_PARSED: OrderedDict[bytes, dict[str, bool] | None] = OrderedDict()  # file digest -> its variables
_PARSED_MAX = 512
_PARSED_LOCK = threading.Lock()


def _file_variables(text: str) -> dict[str, bool] | None:
    """{variable: has a default} of one file, None if it does not parse. Parsing HCL is slow (~200 KB/s)
    and the files of a code version never change, so results are kept by content digest."""
    if not _VARIABLE_BLOCK.search(text):
        return {}  # declares no variable: nothing to parse
    key = hashlib.blake2b(text.encode(), digest_size=16).digest()
    with _PARSED_LOCK:
        if key in _PARSED:
            _PARSED.move_to_end(key)
            return _PARSED[key]
    try:
        import hcl2

        doc = hcl2.loads(text)
        variables: dict[str, bool] = {}
        for block in doc.get("variable", []):
            for raw, attrs in block.items():
                var = raw.strip('"')
                variables[var] = variables.get(var, False) or (isinstance(attrs, dict) and "default" in attrs)
        found: dict[str, bool] | None = variables
    except Exception:  # a syntax error (Terraform reports it), or python-hcl2 missing
        found = None
    with _PARSED_LOCK:
        _PARSED[key] = found
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return found


def _declared_variables(files: dict[str, str]) -> dict[str, bool] | None:
    """{variable: has a default} over .tf/.tofu files; None when a file cannot be parsed: then
    Terraform itself reports what is wrong."""
    declared: dict[str, bool] = {}
    for text in files.values():
        found = _file_variables(text)
        if found is None:
            return None
        for var, has_default in found.items():
            declared[var] = declared.get(var, False) or has_default
    return declared


def _tfvars_keys(name: str, text: str) -> set[str] | None:
    try:
        if name.endswith(".json"):
            doc = json.loads(text)
            return set(doc) if isinstance(doc, dict) else None
        import hcl2

        return {k for k in hcl2.loads(text) if not k.startswith("__")}
    except Exception:
        return None


def _required_check(where: str, files: dict[str, str], values: Iterable[str], workspace: str) -> None:
    """Raise Invalid for the first variable declared without a default that has no value."""
    config = {p: t for p, t in files.items() if p.endswith((".tf", ".tofu"))}
    declared = _declared_variables(config)
    if declared is None:
        return
    given = set(values)
    for path, text in files.items():
        base = posixpath.basename(path)
        if base in ("terraform.tfvars", "terraform.tfvars.json") or base.endswith(
            (".auto.tfvars", ".auto.tfvars.json")
        ):
            keys_in_file = _tfvars_keys(base, text)
            if keys_in_file is None:
                return
            given |= keys_in_file
    for var in sorted(declared):
        if not declared[var] and var not in given:
            raise Invalid(
                f"variable {var} has no value in {where}: set it with "
                f"`xcf workspace vars set {workspace} {var} VALUE` (PUT /api/v1/workspaces/{workspace}/vars/terraform/{var})",
                details={"variable": var},
            )


def _root_module_files(data: bytes, working_directory: str) -> dict[str, str] | None:
    """The text files directly in the working directory (Terraform's root module), by path."""
    out: dict[str, str] = {}
    in_root = archive.read_files(
        data, archive.STORED_LIMITS, only=lambda path: posixpath.dirname(path) == working_directory
    )
    for path, body in in_root.items():
        try:
            out[path] = body.decode()
        except UnicodeDecodeError:
            if path.endswith((".tf", ".tofu", ".tfvars", ".json")):
                return None
    return out


def _variables_tf(session: Session, workspace_id: int) -> str:
    """Resources mode has no file of its own to declare inputs in: every terraform variable of the
    workspace is declared (sensitive ones as such, so Terraform redacts them)."""
    rows = session.execute(
        select(WorkspaceVariable.key, WorkspaceVariable.sensitive)
        .where(WorkspaceVariable.workspace_id == workspace_id, WorkspaceVariable.category == "terraform")
        .order_by(WorkspaceVariable.key)
    ).all()
    blocks = [
        f'variable "{key}" {{\n  sensitive = true\n}}\n' if sensitive else f'variable "{key}" {{}}\n'
        for key, sensitive in rows
    ]
    return "# Generated by XCloudFlow: the workspace's terraform variables.\n" + "\n".join(blocks)


def run_inputs(
    *,
    session: Session,
    keyring: Keyring,
    workspace: Workspace,
    checks: bool = True,
    pinned_resources: dict[str, int] | None = None,
) -> RunInputs:
    """Everything a run of `workspace` needs, with the pre-execution checks (Invalid when not runnable).

    `checks=False` skips the required-variable check (parsing the configuration), e.g. when handing
    the inputs to an agent for a run whose checks passed when it was created; `pinned_resources`
    ({address: version}, what the run was created with) generates main.tf from those versions rather
    than the current ones."""
    ws = workspace
    inputs = RunInputs(code_version_id=None, code_sha256=None, code_number=None, resource_versions=None)
    resources = list(
        session.execute(
            select(WorkspaceResource.address, WorkspaceResource.current_version)
            .where(WorkspaceResource.workspace_id == ws.id)
            .order_by(WorkspaceResource.address)
        ).all()
    )
    code = (
        session.get(WorkspaceCodeVersion, ws.current_code_version_id) if ws.current_code_version_id else None
    )
    if code is None and not resources:
        raise Invalid(
            f"workspace {address(ws)} has no configuration: upload a code version or add resources",
            details={"workspace": address(ws)},
        )
    if code is not None:
        inputs.code_version_id, inputs.code_sha256, inputs.code_number = code.id, code.sha256, code.number
    else:
        from xcloudflow.workspaces.resources import generate_main

        inputs.resource_versions = pinned_resources or {address: version for address, version in resources}
        inputs.files = generate_main(session=session, workspace_id=ws.id, versions=pinned_resources)
        if ws.providers_hcl:
            inputs.files["providers.tf"] = ws.providers_hcl

    sensitive: list[str] = []
    variables = session.scalars(
        select(WorkspaceVariable)
        .where(WorkspaceVariable.workspace_id == ws.id)
        .order_by(WorkspaceVariable.category, WorkspaceVariable.key)
    )
    for v in variables:
        value = variable_value(session=session, keyring=keyring, variable=v)
        if v.sensitive and value and value not in sensitive:
            sensitive.append(value)
        if v.category == "env":
            inputs.env[v.key] = value
        elif v.hcl:
            inputs.hcl_vars[v.key] = value
        else:
            inputs.tfvars[v.key] = value
    hooks = session.scalars(select(WorkspaceHook).where(WorkspaceHook.workspace_id == ws.id))
    for h in sorted(hooks, key=lambda h: (HOOK_STAGES.index(h.stage), h.position, h.id)):
        secret = hook_secret(session=session, keyring=keyring, hook=h)
        if secret and secret not in sensitive:
            sensitive.append(secret)
        inputs.hooks.append(
            {
                "stage": h.stage,
                "kind": h.kind,
                "target": h.target,
                "mandatory": h.mandatory,
                "timeout_seconds": h.timeout_seconds,
                "secret": secret,
            }
        )
    inputs.sensitive = sensitive
    if code is None and "variables.tf" not in inputs.files:
        inputs.files["variables.tf"] = _variables_tf(session, ws.id)

    if not checks:
        return inputs
    given = [*inputs.tfvars, *inputs.hcl_vars]
    given += [k[len("TF_VAR_") :] for k in inputs.env if k.startswith("TF_VAR_")]
    fix = address(ws)
    if code is not None:
        data = code_archive(session=session, keyring=keyring, code_version_id=code.id)
        files = _root_module_files(data, ws.working_directory)
        if files is not None:
            if not any(p.endswith((".tf", ".tf.json", ".tofu", ".tofu.json")) for p in files):
                raise Invalid(
                    f"code version {code.number} of workspace {address(ws)} has no Terraform files in "
                    f"working directory {ws.working_directory or '(the root)'}: upload the configuration "
                    "or change working_directory",
                    details={"working_directory": ws.working_directory},
                )
            if not any(p.endswith((".tf.json", ".tofu.json")) for p in files):  # hcl2 reads no JSON syntax
                _required_check(f"code version {code.number}", files, given, fix)
    else:
        _required_check("the managed resources", inputs.files, given, fix)
    return inputs
