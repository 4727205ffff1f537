"""Rego policies compiled once into a regopy bundle and evaluated per ChangeSet node.

Why it exists: the control plane checks every planned node against the repository's `policies/`
(OPA's language, the conftest conventions: `deny`/`warn` rules whose results are strings or objects
with a `msg`). Policies are grouped in sets whose enforcement (advisory or mandatory) decides whether
a `deny` blocks. This module is pure: no database, no files, no network; the caller hands it sources.

What it must never do: pass silently. A file that does not parse, calls a function the engine does
not have, or fails on evaluation is an `Invalid` naming the file (and the line where one is known),
never an empty result. It must also never print: rego-cpp writes its diagnostics to stdout unless the
log level is NONE, which would corrupt `--output json` of the CLI.

How it stays fast (measured, see docs/policy.md): rego-cpp's `Interpreter.query` re-runs the whole
compiler on every call (about 6 ms for five files); a `Bundle` built once with one query that reads
every package's rules, then `query_bundle` with a new input, costs about 2 ms. The query interpreter
is stateful (`set_input`), so evaluation of one bundle is serialized by a lock; several threads may
share a bundle, they take turns.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import regopy
from regopy import rego_shared

from xcloudflow.errors import Invalid

Enforcement = Literal["advisory", "mandatory"]
ENFORCEMENTS: tuple[str, ...] = ("advisory", "mandatory")
DEFAULT_SET = "default"
# conftest's rule names: deny, violation, warn, optionally with a suffix (deny_public_db).
_DENY_RULE = re.compile(r"^(deny|violation)(_[A-Za-z0-9_]+)?$")
_WARN_RULE = re.compile(r"^warn(_[A-Za-z0-9_]+)?$")
_KEYWORDS = frozenset(
    {"not", "some", "every", "in", "if", "contains", "else", "with", "as", "default", "import", "package"}
    | {"true", "false", "null", "input", "data"}
)
# Built-ins rego-cpp implements but does not list in `is_builtin`.
_EXTRA_BUILTINS = frozenset({"print"})


@dataclass(frozen=True)
class PolicySetConfig:
    """A named group of policy files (every file under `path`) and what a deny in it means."""

    name: str
    path: str  # repo-relative prefix, e.g. "policies/security"
    enforcement: Enforcement


@dataclass(frozen=True)
class PolicyOutcome:
    """What one Rego package said about one input; `file` names its file(s), comma-separated."""

    set: str
    enforcement: str
    file: str
    package: str
    deny: list[str]
    warn: list[str]
    files: tuple[str, ...] = field(default=())

    @property
    def blocking(self) -> bool:
        return self.enforcement == "mandatory" and bool(self.deny)

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "enforcement": self.enforcement,
            "file": self.file,
            "files": list(self.files or (self.file,)),
            "package": self.package,
            "deny": list(self.deny),
            "warn": list(self.warn),
            "blocking": self.blocking,
        }


@dataclass(frozen=True)
class _Package:
    name: str
    files: tuple[str, ...]
    set: str
    enforcement: str
    deny_rules: tuple[str, ...]
    warn_rules: tuple[str, ...]


@dataclass
class _Issue:
    file: str
    line: int | None
    column: int | None
    message: str

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "message": self.message}


# per package: its deny and warn rules as (query variable, rule reference) pairs
_Bindings = list[tuple[_Package, list[tuple[str, str]], list[tuple[str, str]]]]


class PolicyBundle:
    """Compiled policies: build with `compile`, then `evaluate` once per node (thread-safe)."""

    def __init__(
        self, packages: list[_Package], sources: dict[str, str], bundle: Any, bindings: _Bindings
    ) -> None:
        self._packages = packages
        self._sources = sources
        self._bundle = bundle  # regopy.Bundle; must outlive the interpreter's queries
        self._bindings = bindings
        self._runner = _quiet_interpreter() if bundle is not None else None
        self._lock = threading.Lock()
        self._rule_lines: dict[str, dict[str, int]] = {}  # file -> rule name -> line of its first head

    # ------------------------------------------------------------------ building

    @classmethod
    def compile(cls, files: Mapping[str, str], sets: Sequence[PolicySetConfig]) -> PolicyBundle:
        """Parse and compile every file; any problem in any file is one `Invalid` listing them all."""
        _check_sets(sets)
        issues: list[_Issue] = []
        packages_of: dict[str, str] = {}
        rules_of: dict[str, list[str]] = {}
        defined_functions: set[str] = set()
        lexed: dict[str, _Lexed] = {}
        for path in sorted(files):
            source = files[path]
            lex = _lex(source)
            lexed[path] = lex
            defined_functions |= lex.defined_functions
            if lex.package is None:
                issues.append(
                    _Issue(path, 1, 1, "no `package` declaration: a policy file starts with `package <name>`")
                )
                continue
            packages_of[path] = lex.package
            rules_of[path] = lex.rule_names
            issues.extend(_parse_issues(path, source))
        checker = _quiet_interpreter()
        for path, lex in lexed.items():
            if any(issue.file == path for issue in issues):
                continue
            for name, line, column in lex.calls:
                if not _known_function(checker, name, defined_functions, lex.import_aliases):
                    issues.append(
                        _Issue(
                            path,
                            line,
                            column,
                            f"unknown function `{name}`: neither a built-in of the Rego engine "
                            f"(rego-cpp {_engine_version()}) nor defined in these policies",
                        )
                    )
        if issues:
            raise _invalid(issues)

        packages = _group_packages(packages_of, rules_of, sets, issues)
        if issues:
            raise _invalid(issues)
        if not packages:
            return cls([], dict(files), None, [])

        builder = _quiet_interpreter()
        for path in sorted(packages_of):
            try:
                builder.add_module(path, files[path])
            except regopy.RegoError as exc:  # e.g. a clash between two files of one package
                issues.extend(_issues_from_error(str(exc), files, default_file=path))
        if issues:
            raise _invalid(issues)
        query, bindings = _query_for(packages)
        try:
            bundle = builder.build(query, [])
        except regopy.RegoError as exc:
            raise _invalid(_issues_from_error(str(exc), files, default_file=sorted(files)[0])) from exc
        compiled = cls(packages, dict(files), bundle, bindings)
        compiled._rule_lines = {path: lex.rule_lines for path, lex in lexed.items()}
        # rego-cpp finds some compile errors (recursion, conflicting values of a constant) only while
        # evaluating; an empty input reaches the rules that do not depend on the input.
        try:
            compiled.evaluate({})
        except Invalid as exc:
            raise Invalid(
                f"policy does not compile (found evaluating it on an empty input): {exc.message}",
                details=exc.details,
            ) from exc
        return compiled

    @property
    def files(self) -> list[str]:
        return sorted(self._sources)

    @property
    def packages(self) -> list[str]:
        return [package.name for package in self._packages]

    # ------------------------------------------------------------------ evaluating

    def evaluate(self, input: Mapping[str, Any]) -> list[PolicyOutcome]:
        """Evaluate every package on `input`; one outcome per package, ordered by set then package."""
        if self._runner is None:
            return []
        try:
            value = regopy.Input(dict(input))
        except Exception as exc:
            raise Invalid(f"the policy input is not a JSON document: {exc}") from exc
        with self._lock:
            self._runner.set_input(value)
            ok, bound, error = _run(self._runner, self._bundle)
        if not ok:
            raise self._runtime_error(input, error)
        outcomes = []
        for package, deny_keys, warn_keys in self._bindings:
            outcomes.append(
                PolicyOutcome(
                    set=package.set,
                    enforcement=package.enforcement,
                    file=", ".join(package.files),
                    package=package.name,
                    deny=_messages(bound, deny_keys),
                    warn=_messages(bound, warn_keys),
                    files=package.files,
                )
            )
        return outcomes

    def _runtime_error(self, input: Mapping[str, Any], error: str) -> Invalid:
        """Find which package failed (slow path: one query per package) and name it and its files."""
        for package, deny_keys, warn_keys in self._bindings:
            probe = _quiet_interpreter()
            for path in package.files:
                probe.add_module(path, self._sources[path])
            for other in self._packages:  # a package may import rules of another
                for path in other.files:
                    if path not in package.files:
                        probe.add_module(path, self._sources[path])
            probe.set_input(regopy.Input(dict(input)))
            query = "; ".join(f"{var} := [x | x := {ref}]" for var, ref in deny_keys + warn_keys)
            ok, _, failure = _run_query(probe, query)
            if not ok:
                file, line = self._locate(package, failure)
                where = f"{file}:{line}" if line else ", ".join(package.files)
                return Invalid(
                    f"policy package `{package.name}` ({where}) failed while evaluating: {failure}",
                    details={
                        "issues": [{"file": file, "line": line, "message": failure}],
                        "package": package.name,
                    },
                )
        files = ", ".join(self.files)
        return Invalid(
            f"the policies ({files}) failed while evaluating: {error}", details={"files": self.files}
        )

    def _locate(self, package: _Package, failure: str) -> tuple[str, int | None]:
        """The file and line of the rule an evaluation error names (`... data.main.p`), if it does."""
        prefix = f"data.{package.name}."
        for mention in re.findall(r"data\.[A-Za-z0-9_.]+", failure):
            rule = mention[len(prefix) :].split(".", 1)[0] if mention.startswith(prefix) else ""
            for path in package.files:
                line = self._rule_lines.get(path, {}).get(rule)
                if line is not None:
                    return path, line
        return package.files[0], None


# ---------------------------------------------------------------------- regopy plumbing


def _quiet_interpreter() -> Any:
    interpreter = regopy.Interpreter()
    interpreter.log_level = regopy.LogLevel.NONE  # otherwise rego-cpp prints its errors on stdout
    return interpreter


def _engine_version() -> str:
    return str(rego_shared.rego_version())


def _run(interpreter: Any, bundle: Any) -> tuple[bool, dict[str, Any], str]:
    """Query a bundle with the low-level calls: regopy's `Output` chokes on error outputs.

    Returns (ok, the query's bindings, the error text).
    """
    output = rego_shared.rego_bundle_query(interpreter._impl, bundle._impl)
    try:
        ok, text, error = _read_output(output)
        if not ok or text == "undefined":
            return ok, {}, error
        try:
            bindings = json.loads(text).get("bindings", {})
        except ValueError:
            # rego-cpp 1.5 can print a string unescaped (sprintf of several arguments, one of them
            # computed by upper/lower/concat, keeps that argument's quotes): read the result tree.
            bindings = _bindings_from_tree(rego_shared.rego_output_node(output))
        return True, bindings, ""
    finally:
        rego_shared.rego_free_output(output)


def _bindings_from_tree(node: Any) -> dict[str, Any]:
    bindings: dict[str, Any] = {}
    for result in _children(node):
        for part in _children(result):
            if rego_shared.rego_node_type(part) != rego_shared.NodeKind.Bindings:
                continue
            for binding in _children(part):
                var, value = _children(binding)
                bindings[str(rego_shared.rego_node_value(var))] = _tree_value(value)
    return bindings


def _children(node: Any) -> list[Any]:
    return [rego_shared.rego_node_get(node, index) for index in range(rego_shared.rego_node_size(node))]


def _tree_value(node: Any) -> Any:
    kind = rego_shared.rego_node_type(node)
    kinds = rego_shared.NodeKind
    if kind in (kinds.Term, kinds.Scalar):
        return _tree_value(_children(node)[0])
    if kind == kinds.String:
        return str(rego_shared.rego_node_value(node))
    if kind == kinds.Int:
        return int(rego_shared.rego_node_value(node))
    if kind == kinds.Float:
        return float(rego_shared.rego_node_value(node))
    if kind == kinds.Boolean:
        return rego_shared.rego_node_value(node) == "true"
    if kind in (kinds.Array, kinds.Set):
        return [_tree_value(child) for child in _children(node)]
    if kind == kinds.Object:
        items = {}
        for item in _children(node):
            key, value = (_tree_value(child) for child in _children(item))
            items[key if isinstance(key, str) else json.dumps(key, sort_keys=True)] = value
        return items
    return None


def _run_query(interpreter: Any, query: str) -> tuple[bool, str, str]:
    try:
        output = rego_shared.rego_query(interpreter._impl, query)
    except regopy.RegoError as exc:
        return False, "", _error_text(str(exc))
    try:
        return _read_output(output)
    finally:
        rego_shared.rego_free_output(output)


def _read_output(output: Any) -> tuple[bool, str, str]:
    if not rego_shared.rego_output_ok(output):
        return False, "", _error_node_text(rego_shared.rego_output_node(output))
    text = str(rego_shared.rego_output_string(output))
    # rego-cpp reports some evaluation errors (function not found, recursion) as an "ok" output whose
    # text is an error tree instead of JSON.
    if text.lstrip().startswith("(error"):
        return False, "", _error_text(text)
    return True, text, ""


def _error_node_text(node: Any) -> str:
    """`ErrorSeq > Error > (ErrorMessage, ErrorAst, ErrorCode)`: the messages and their codes."""
    kinds = rego_shared.NodeKind
    found: dict[str, list[str]] = {"messages": [], "codes": []}
    for error in _children(node) if node else []:
        for part in _children(error):
            kind = rego_shared.rego_node_type(part)
            if kind in (kinds.ErrorMessage, kinds.ErrorCode):
                value = str(rego_shared.rego_node_value(part))
                found["messages" if kind == kinds.ErrorMessage else "codes"].append(value)
    text = (
        "; ".join(dict.fromkeys(found["messages"])) or "the Rego engine reported an error without a message"
    )
    return f"{text} ({', '.join(dict.fromkeys(found['codes']))})" if found["codes"] else text


_ERRMSG = re.compile(rb"\(errormsg (\d+):")
_ERROR_AT = re.compile(rb"\(error (\d+):")


def _error_text(text: str) -> str:
    messages = [message for _, _, _, message in _error_entries(text)]
    return "; ".join(dict.fromkeys(messages)) or text.strip()


def _error_entries(text: str) -> Iterator[tuple[str | None, int | None, int | None, str]]:
    """Read rego-cpp's error tree: `(error 15:policies/x.rego|35|2 (errormsg 16:this is unclosed) ...)`.

    The numbers before ':' are byte lengths of what follows; `|offset|length` locates the node in its
    source (byte offset). Entries without a location (evaluation errors) give None for them.
    """
    raw = text.encode("utf-8")
    for match in _ERRMSG.finditer(raw):
        size = int(match.group(1))
        message = raw[match.end() : match.end() + size].decode("utf-8", "replace")
        start = raw.rfind(b"(error", 0, match.start())
        source: str | None = None
        offset: int | None = None
        length: int | None = None
        located = _ERROR_AT.match(raw, start) if start >= 0 else None
        if located is not None:
            name_size = int(located.group(1))
            name_start = located.end()
            source = raw[name_start : name_start + name_size].decode("utf-8", "replace")
            rest = re.match(rb"\|(\d+)\|(\d+)", raw[name_start + name_size :])
            if rest is not None:
                offset, length = int(rest.group(1)), int(rest.group(2))
        yield source, offset, length, message


def _parse_issues(path: str, source: str) -> list[_Issue]:
    interpreter = _quiet_interpreter()
    try:
        interpreter.add_module(path, source)
    except regopy.RegoError as exc:
        return _issues_from_error(str(exc), {path: source}, default_file=path)
    return []


def _issues_from_error(text: str, sources: Mapping[str, str], *, default_file: str) -> list[_Issue]:
    issues: list[_Issue] = []
    seen: set[tuple[str, int | None, str]] = set()
    entries = list(_error_entries(text))
    for source_name, offset, length, message in entries:
        file = source_name if source_name is not None and source_name in sources else default_file
        line = column = None
        if offset is not None and file == source_name:
            snippet = _token_at(sources[file], offset, length or 0)
            # rego-cpp repeats an unclosed-bracket error on the `package` keyword (the whole module
            # is unclosed); the other entry points at the bracket itself.
            repeated = sum(entry[3] == message for entry in entries) > 1
            if repeated and snippet == "package":
                continue
            line, column = _line_column(sources[file], offset)
            if snippet and snippet != "package":
                message = f"{message} (at `{snippet}`)"
        key = (file, line, message)
        if key in seen:
            continue
        seen.add(key)
        issues.append(_Issue(file, line, column, message))
    if not issues:
        issues.append(_Issue(default_file, None, None, text.strip() or "the Rego engine rejected this file"))
    return issues


def _token_at(source: str, byte_offset: int, byte_length: int) -> str:
    raw = source.encode("utf-8")[byte_offset : byte_offset + min(byte_length, 40)]
    return raw.decode("utf-8", "replace").split("\n", 1)[0].strip()


def _line_column(source: str, byte_offset: int) -> tuple[int, int]:
    before = source.encode("utf-8")[:byte_offset].decode("utf-8", "replace")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return line, column


def _invalid(issues: list[_Issue]) -> Invalid:
    issues = sorted(issues, key=lambda issue: (issue.file, issue.line or 0, issue.column or 0))
    lines = [issue.render() for issue in issues]
    files = {issue.file for issue in issues}
    head = "policy does not compile" if len(files) == 1 else f"policies do not compile ({len(files)} files)"
    return Invalid(f"{head}: " + "; ".join(lines), details={"issues": [issue.to_json() for issue in issues]})


# ---------------------------------------------------------------------- sets, packages, the query


def _check_sets(sets: Sequence[PolicySetConfig]) -> None:
    names: set[str] = set()
    for policy_set in sets:
        if policy_set.enforcement not in ENFORCEMENTS:
            raise Invalid(
                f"policy set `{policy_set.name}`: enforcement must be one of {', '.join(ENFORCEMENTS)}, "
                f"not {policy_set.enforcement!r}"
            )
        if policy_set.name in names:
            raise Invalid(f"policy set `{policy_set.name}` is declared twice")
        names.add(policy_set.name)


def set_for(path: str, sets: Sequence[PolicySetConfig]) -> PolicySetConfig:
    """The set a file belongs to: the longest matching path prefix; else the advisory set "default"."""
    best: PolicySetConfig | None = None
    for policy_set in sets:
        prefix = policy_set.path.strip("/")
        matches = prefix in ("", ".") or path == prefix or path.startswith(prefix + "/")
        if matches and (best is None or len(prefix) > len(best.path.strip("/"))):
            best = policy_set
    return best or PolicySetConfig(name=DEFAULT_SET, path="", enforcement="advisory")


def _group_packages(
    packages_of: dict[str, str],
    rules_of: dict[str, list[str]],
    sets: Sequence[PolicySetConfig],
    issues: list[_Issue],
) -> list[_Package]:
    by_package: dict[str, list[str]] = {}
    for path in sorted(packages_of):
        by_package.setdefault(packages_of[path], []).append(path)
    packages = []
    for name, paths in by_package.items():
        chosen = {path: set_for(path, sets) for path in paths}
        names = sorted({policy_set.name for policy_set in chosen.values()})
        if len(names) > 1:
            where = ", ".join(f"{path} (set {chosen[path].name})" for path in paths)
            for path in paths:
                issues.append(
                    _Issue(
                        path,
                        1,
                        None,
                        f"package `{name}` is split across policy sets: {where}; OPA merges files of one "
                        "package, so they must share one set (rename the package or move the file)",
                    )
                )
            continue
        rules = sorted({rule for path in paths for rule in rules_of[path]})
        policy_set = chosen[paths[0]]
        packages.append(
            _Package(
                name=name,
                files=tuple(paths),
                set=policy_set.name,
                enforcement=policy_set.enforcement,
                deny_rules=tuple(rule for rule in rules if _DENY_RULE.match(rule)),
                warn_rules=tuple(rule for rule in rules if _WARN_RULE.match(rule)),
            )
        )
    return sorted(packages, key=lambda package: (package.set, package.name))


def _query_for(packages: list[_Package]) -> tuple[str, _Bindings]:
    """One query for every package's deny/warn rules.

    `[x | x := data.p.deny]` is [] when the rule is undefined instead of making the whole query
    undefined, and reading each rule (not `data.p`) keeps helper rules that fail out of it.
    """
    parts: list[str] = []
    bindings: _Bindings = []
    for index, package in enumerate(packages):
        base = "data" + "".join(f"[{json.dumps(segment)}]" for segment in package.name.split("."))
        deny = [(f"d{index}_{n}", f"{base}[{json.dumps(rule)}]") for n, rule in enumerate(package.deny_rules)]
        warn = [(f"w{index}_{n}", f"{base}[{json.dumps(rule)}]") for n, rule in enumerate(package.warn_rules)]
        parts.extend(f"{var} := [x | x := {ref}]" for var, ref in deny + warn)
        bindings.append((package, deny, warn))
    return "; ".join(parts) or "true", bindings


def _messages(bound: Mapping[str, Any], keys: list[tuple[str, str]]) -> list[str]:
    found: list[str] = []
    for var, _ in keys:
        for value in bound.get(var, []):
            found.extend(_render(value))
    return list(dict.fromkeys(found))


def _render(value: Any) -> list[str]:
    """conftest's rendering: strings as they are, objects by their `msg`; a few Rego shapes more.

    `deny[msg] { ... }` without `contains` reads, in rego-cpp as in OPA v1, as an object {msg: true};
    its keys are the messages (an object key that was itself an object arrives JSON-encoded).
    """
    if value is None or value is False:
        return []
    if value is True:
        return ["denied (the rule is true)"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [message for item in value for message in _render(item)]
    if isinstance(value, dict):
        if "msg" in value and value["msg"] is not True:
            return [_one(value["msg"])]
        rendered: list[str] = []
        for key, item in value.items():
            if item is True:
                rendered.append(_key_message(key))
            elif item not in (None, False):
                rendered.extend(_render(item))
        return rendered
    return [_one(value)]


def _key_message(key: str) -> str:
    if key.startswith("{"):
        try:
            decoded = json.loads(key)
        except ValueError:
            return key
        if isinstance(decoded, dict) and "msg" in decoded:
            return _one(decoded["msg"])
    return key


def _one(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------------- a small Rego lexer


@dataclass
class _Lexed:
    package: str | None = None
    rule_names: list[str] = field(default_factory=list)
    rule_lines: dict[str, int] = field(default_factory=dict)
    defined_functions: set[str] = field(default_factory=set)
    calls: list[tuple[str, int, int]] = field(default_factory=list)  # name, line, column
    import_aliases: set[str] = field(default_factory=set)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_PACKAGE = re.compile(r"package\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_IMPORT = re.compile(r"import\s+([A-Za-z_][A-Za-z0-9_.]*)(?:\s+as\s+([A-Za-z_][A-Za-z0-9_]*))?")


def _lex(source: str) -> _Lexed:
    """What the compiler needs before regopy sees the file: package, rule names, function calls.

    Skips comments and strings, tracks bracket depth: a name at depth 0 at the start of a line is a
    rule head (a function definition when a '(' follows); a name followed by '(' elsewhere is a call.
    """
    out = _Lexed()
    depth = 0
    line, line_start = 1, 0
    at_line_start = True
    index, size = 0, len(source)
    while index < size:
        char = source[index]
        if char == "\n":
            line, line_start, at_line_start = line + 1, index + 1, True
            index += 1
            continue
        if char in " \t\r":
            index += 1
            continue
        if char == "#":
            end = source.find("\n", index)
            index = size if end < 0 else end
            continue
        if char == '"' or char == "`":
            index = _skip_string(source, index)
            at_line_start = False
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        match = _IDENT.match(source, index) if (char.isalpha() or char == "_") else None
        if match is None:
            at_line_start = False
            index += 1
            continue
        name = match.group(0)
        head = depth == 0 and at_line_start
        at_line_start = False
        if head and name == "package":
            declared = _PACKAGE.match(source, index)
            if declared is not None and out.package is None:
                out.package = declared.group(1)
            index = declared.end() if declared is not None else match.end()
            continue
        if head and name == "import":
            imported = _IMPORT.match(source, index)
            if imported is not None:
                out.import_aliases.add(imported.group(2) or imported.group(1).rsplit(".", 1)[-1])
                index = imported.end()
                continue
        if head and name == "default":
            at_line_start = True  # the rule name follows
            index = match.end()
            continue
        following = _next_char(source, match.end())
        if head and name not in _KEYWORDS:
            out.rule_names.append(name.split(".", 1)[0])
            out.rule_lines.setdefault(name.split(".", 1)[0], line)
            if following == "(":
                out.defined_functions.add(name)
        elif following == "(" and name not in _KEYWORDS:
            out.calls.append((name, line, index - line_start + 1))
        index = match.end()
    return out


def _skip_string(source: str, index: int) -> int:
    quote = source[index]
    index += 1
    while index < len(source):
        char = source[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote or (quote == '"' and char == "\n"):
            return index + 1
        index += 1
    return index


def _next_char(source: str, index: int) -> str:
    while index < len(source) and source[index] in " \t":
        index += 1
    return source[index] if index < len(source) else ""


def _known_function(checker: Any, name: str, defined: set[str], aliases: set[str]) -> bool:
    first = name.split(".", 1)[0]
    if first == "data" or (first in aliases and "." in name):
        return True  # a function of another package; the engine resolves it
    if name in defined or name in _EXTRA_BUILTINS:
        return True
    return bool(checker.is_builtin(name))
