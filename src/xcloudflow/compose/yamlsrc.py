"""YAML documents that remember where every value came from, and the errors that say so.

A person fixing a repository needs "compositions/db.yaml:12: spec.modules[0].engine: unknown engine",
not a Python traceback. This module parses one YAML file with PyYAML's C loader when available (composed within
`xcloudflow.bounded`'s limits, so an alias bomb or a deep document is an error at its line), keeps
the parsed value AND a map from each field path (`spec.modules[0].engine`) to its 1-based line, and
turns problems into `SpecIssue`s. It knows nothing of compositions or of the filesystem layout, and it
never raises anything but `SpecError` for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from xcloudflow import bounded
from xcloudflow.errors import Invalid

Path = tuple[str | int, ...]  # ("spec", "modules", 0, "engine")


def dotted(path: Sequence[str | int]) -> str:
    """("spec", "modules", 0, "engine") -> "spec.modules[0].engine"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class SpecIssue:
    file: str  # repo-relative path
    line: int | None  # 1-based
    field: str | None  # dotted path: "spec.modules[0].engine"
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class SpecError(Invalid):
    """One or more problems in a repository's YAML; `issues` lists all of them, in file order."""

    code = "invalid_spec"

    def __init__(self, issues: Iterable[SpecIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line or 0, i.field or ""))
        if not self.issues:
            raise ValueError("SpecError needs at least one issue")
        message = str(self.issues[0])
        if len(self.issues) > 1:
            message += f" (and {len(self.issues) - 1} more)"
        super().__init__(message, details={"issues": [i.to_json() for i in self.issues]})


@dataclass(frozen=True)
class YamlDocument:
    """One parsed YAML file: its value and the line of every field path in it."""

    file: str
    data: Any
    lines: dict[Path, int] = field(repr=False)
    duplicates: list[tuple[Path, int]] = field(default_factory=list, repr=False)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists (a missing field is reported at
        the mapping that should hold it)."""
        key = tuple(path)
        while True:
            line = self.lines.get(key)
            if line is not None or not key:
                return line
            key = key[:-1]

    def issue(self, path: Sequence[str | int], message: str) -> SpecIssue:
        return SpecIssue(self.file, self.line_of(path), dotted(path) or None, message)


def _index_lines(node: yaml.Node, path: Path, lines: dict[Path, int], dups: list[tuple[Path, int]]) -> None:
    # Iterative walk: deep documents must not hit the recursion limit.
    stack: list[tuple[yaml.Node, Path]] = [(node, path)]
    seen: set[int] = set()
    while stack:
        current, where = stack.pop()
        if id(current) in seen:  # an alias: its lines are those of the anchor
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                    continue
                name = str(key_node.value)
                child = (*where, name)
                if name in keys:
                    dups.append((child, key_node.start_mark.line + 1))
                keys.add(name)
                lines[child] = key_node.start_mark.line + 1
                stack.append((value_node, child))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                child = (*where, index)
                lines[child] = item.start_mark.line + 1
                stack.append((item, child))


def yaml_problem(file: str, exc: yaml.YAMLError) -> SpecIssue:
    """A parser/scanner error as an issue at the line PyYAML points to."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    text = f"invalid YAML: {problem}"
    if context and context not in problem:
        text += f" ({context})"
    if mark is not None:
        text += f" at column {mark.column + 1}"
    return SpecIssue(file, mark.line + 1 if mark is not None else None, None, text)


def parse(text: str, *, file: str) -> YamlDocument:
    """Parse one single-document YAML text; `SpecError` (with the line) when it is not valid YAML."""
    loader = bounded.SAFE_LOADER(text)
    try:
        node = bounded.single_node(loader)  # depth, values and alias expansion bounded
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise SpecError([yaml_problem(file, exc)]) from exc
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    dups: list[tuple[Path, int]] = []
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _index_lines(node, (), lines, dups)
    return YamlDocument(file=file, data=data, lines=lines, duplicates=dups)
