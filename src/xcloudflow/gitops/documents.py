"""Finding and checking `ConfluxConfig` documents in a checked-out repository.

A repository holds many YAML files; only documents with `kind: ConfluxConfig` are ours, every other
YAML document is ignored. A file that claims the kind but is not valid YAML, or a ConfluxConfig with
a missing or wrong field, becomes a `DocumentProblem` with the file and line, so one bad file fails
only itself. The seed's example validates as is. This module reads files only under the directory it
is given, never follows symbolic links, and knows nothing of templates, secrets or the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from xcloudflow import bounded
from xcloudflow.compose.yamlsrc import dotted, yaml_problem

API_VERSION = "gitops.conflux.io/v1alpha1"
KIND = "ConfluxConfig"
MAX_FILE_BYTES = 1024 * 1024
PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CLAIMS_KIND = re.compile(r"^\s*kind\s*:\s*[\"']?ConfluxConfig\b", re.MULTILINE)
DEFAULT_TENANT = "default"


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")  # labels, annotations... as Kubernetes has them

    name: StrictStr
    namespace: StrictStr | None = None


class _Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: StrictStr


class _SecretsRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    application: StrictStr
    environment: StrictStr
    format: StrictStr
    template: _Template
    secretsRef: _SecretsRef | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    stable: StrictBool = True
    json_schema: StrictStr | dict[str, Any] | None = Field(default=None, alias="schema")
    description: StrictStr | None = None


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    apiVersion: StrictStr
    kind: StrictStr
    metadata: _Metadata
    spec: _Spec
    status: Any = None  # written by a Kubernetes controller; ignored here


@dataclass(frozen=True)
class ConfigDocument:
    """One valid ConfluxConfig: where it is and what it asks for."""

    file: str  # repository-relative path
    index: int  # position of the document in its file (0 for the first)
    line: int  # 1-based line where the document starts
    tenant: str
    application: str
    environment: str
    name: str
    format: str
    template: str
    template_line: int  # file line of the template's first line
    secrets_ref: str | None
    secrets_ref_line: int | None
    values: dict[str, Any] = field(default_factory=dict)
    stable: bool = True
    schema: str | None = None
    description: str | None = None

    @property
    def key_path(self) -> str:
        """What the idempotency key hashes with the commit: the file, and `#N` for a later document."""
        return self.file if self.index == 0 else f"{self.file}#{self.index}"

    @property
    def address(self) -> str:
        return f"{self.tenant}/{self.application}/{self.environment}/{self.name}"


@dataclass(frozen=True)
class DocumentProblem:
    """A document (or file) that claims to be a ConfluxConfig and cannot be used."""

    file: str
    index: int
    line: int | None
    message: str
    address: str | None = None

    @property
    def key_path(self) -> str:
        return self.file if self.index == 0 else f"{self.file}#{self.index}"

    def __str__(self) -> str:
        return f"{self.file}{':' + str(self.line) if self.line else ''}: {self.message}"


def _node_at(node: yaml.Node | None, path: Sequence[str | int]) -> tuple[yaml.Node | None, int | None]:
    """(value node, 1-based line of its key) at `path`, or the nearest existing ancestor's."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return node, line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return node, line
    return node, line


def _duplicate_key(node: yaml.Node) -> tuple[str, int] | None:
    stack = [(node, "")]
    while stack:
        current, where = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                name = f"{where}.{key.value}" if where else str(key.value)
                if key.value in seen:
                    return name, key.start_mark.line + 1
                seen.add(key.value)
                stack.append((value, name))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(current.value))
    return None


def _template_line(node: yaml.Node | None, key_line: int | None) -> int:
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return node.start_mark.line + 2  # the block starts on the line after the indicator
    if node is not None:
        return node.start_mark.line + 1
    return key_line or 1


def _check(doc: ConfigDocument, node: yaml.Node) -> list[tuple[int | None, str]]:
    problems: list[tuple[int | None, str]] = []
    for label, value, path in (
        ("metadata.namespace (the tenant)", doc.tenant, ("metadata", "namespace")),
        ("metadata.name (the config name)", doc.name, ("metadata", "name")),
        ("spec.application", doc.application, ("spec", "application")),
        ("spec.environment", doc.environment, ("spec", "environment")),
    ):
        if not PART.match(value):
            problems.append(
                (
                    _node_at(node, path)[1],
                    f"{label} {value!r} is not valid: letters, digits and . _ -, at most 128, "
                    "starting with a letter or digit",
                )
            )
    if doc.secrets_ref is not None and not PART.match(doc.secrets_ref):
        problems.append(
            (doc.secrets_ref_line, f"spec.secretsRef.name {doc.secrets_ref!r} is not a secret name")
        )
    return problems


def _one(data: Any, node: yaml.Node, *, file: str, index: int) -> ConfigDocument | DocumentProblem | None:
    if not isinstance(data, dict) or data.get("kind") != KIND:
        return None
    start = node.start_mark.line + 1
    dup = _duplicate_key(node)
    if dup is not None:
        return DocumentProblem(file, index, dup[1], f"{dup[0]}: duplicate key")
    if data.get("apiVersion") != API_VERSION:
        line = _node_at(node, ("apiVersion",))[1]
        return DocumentProblem(
            file, index, line, f"apiVersion {data.get('apiVersion')!r} is not supported (use {API_VERSION})"
        )
    try:
        parsed = _Document.model_validate(data)
    except ValidationError as exc:
        messages = []
        first_line: int | None = None
        for err in exc.errors():
            loc = [p for p in err["loc"] if isinstance(p, str | int)]
            if loc and loc[-1] in ("str", "dict[str,any]", "function-plain[...]"):
                loc = loc[:-1]
            line = _node_at(node, loc)[1]
            first_line = first_line if first_line is not None else line
            messages.append(f"{dotted(loc)}: {err['msg'].lower()}" + (f" (line {line})" if line else ""))
        text = "; ".join(dict.fromkeys(messages))
        return DocumentProblem(file, index, first_line or start, f"not a valid ConfluxConfig: {text}")
    spec = parsed.spec
    content_node, content_line = _node_at(node, ("spec", "template", "content"))
    ref_line = _node_at(node, ("spec", "secretsRef", "name"))[1] if spec.secretsRef else None
    schema = spec.json_schema
    if isinstance(schema, dict):
        import json

        schema = json.dumps(schema, indent=2, sort_keys=True)
    doc = ConfigDocument(
        file=file,
        index=index,
        line=start,
        tenant=parsed.metadata.namespace or DEFAULT_TENANT,
        application=spec.application,
        environment=spec.environment,
        name=parsed.metadata.name,
        format=spec.format,
        template=spec.template.content,
        template_line=_template_line(content_node, content_line),
        secrets_ref=spec.secretsRef.name if spec.secretsRef else None,
        secrets_ref_line=ref_line,
        values=spec.values,
        stable=spec.stable,
        schema=schema,
        description=spec.description,
    )
    problems = _check(doc, node)
    if problems:
        line, message = problems[0]
        return DocumentProblem(file, index, line or start, message, address=doc.address)
    return doc


def parse_file(text: str, *, file: str) -> list[ConfigDocument | DocumentProblem]:
    """Every ConfluxConfig document of one YAML file (others are skipped). A file that is not valid
    YAML is a problem only when it claims the kind."""
    found: list[ConfigDocument | DocumentProblem] = []
    index = 0
    try:
        # Composed within bounded's limits: spec.values with an alias bomb never reaches a template.
        for node, data in bounded.iter_documents(text):
            result = _one(data, node, file=file, index=index)
            if result is not None:
                found.append(result)
            index += 1
    except yaml.YAMLError as exc:
        if _CLAIMS_KIND.search(text):
            issue = yaml_problem(file, exc)
            found.append(DocumentProblem(file, index, issue.line, issue.message))
    return found


def scan(root: Path, path: str) -> list[ConfigDocument | DocumentProblem]:
    """Every ConfluxConfig under `root/path` (YAML files, sorted by path; hidden directories and
    symbolic links skipped). File names in the results are relative to `root`."""
    top = (root / path).resolve() if path else root.resolve()
    base = root.resolve()
    found: list[ConfigDocument | DocumentProblem] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith((".yaml", ".yml")):
                continue
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(base).as_posix()
            raw = full.read_bytes()
            if len(raw) > MAX_FILE_BYTES:
                if _CLAIMS_KIND.search(raw[:65536].decode(errors="replace")):
                    found.append(DocumentProblem(rel, 0, None, f"file is larger than {MAX_FILE_BYTES} bytes"))
                continue
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                if _CLAIMS_KIND.search(raw.decode(errors="replace")):
                    found.append(DocumentProblem(rel, 0, None, "file is not UTF-8 text"))
                continue
            found.extend(parse_file(text, file=rel))
    return found
