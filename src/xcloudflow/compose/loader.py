"""Loading a compose repository from a directory: every document validated, every reference checked.

`load_repository(root)` reads the seed's layout (`.xcf.yaml`, `envs/<env>/environment.yaml`,
`compositions/**.yaml`, `policies/**.rego`; `modules/` and `playbooks/` are only looked at, never
read), validates each document (dsl.py) and then what a single document cannot know: that module
paths exist and suit their engine, that referenced compositions, environments and change windows
exist, that an environment holds every composition its compositions depend on, that dependencies
follow the layer order. It collects ALL problems and raises one `SpecError` listing them, each with
file, line and field; nothing downstream ever sees a half-valid repository.

It reads files only: no git (repo.py gives it a directory), no database, no network. Cycles and the
plan order are graph.py's job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xcloudflow.compose import router
from xcloudflow.compose.dsl import (
    Composition,
    Environment,
    RepoConfig,
    as_written,
    validate_document,
)
from xcloudflow.compose.yamlsrc import SpecError, SpecIssue, YamlDocument, parse

CONFIG_FILES = (".xcf.yaml", ".xcf.yml")
YAML_SUFFIXES = (".yaml", ".yml")
MAX_DOCUMENT_BYTES = 1 << 20
# Layer ranks for dependency direction: Application and Ephemeral share a rank.
LAYER_RANK = {"Foundation": 0, "Platform": 1, "Application": 2, "Ephemeral": 2, "Config": 3}


@dataclass(frozen=True)
class ModulePath:
    """What is at a module ref on disk, and which engines can run it."""

    ref: str
    kind: str  # "dir" | "file"
    inferred: str | None  # the engine the files point to (None: nothing recognizable)
    engines: frozenset[str]  # engines that can run it
    needs: str  # what engines need, for messages


@dataclass(frozen=True)
class Repository:
    root: Path
    config: RepoConfig  # .xcf.yaml (defaults when absent)
    compositions: dict[str, Composition]  # REF -> model
    environments: dict[str, Environment]  # env name -> model
    sources: dict[str, str]  # REF or "envs/<name>" -> repo-relative file path
    policy_files: dict[str, str]  # repo-relative path -> Rego source (policies/**/*.rego)
    documents: dict[str, YamlDocument] = field(default_factory=dict, repr=False)  # file -> lines
    modules: dict[str, ModulePath] = field(default_factory=dict, repr=False)  # module ref -> what it is

    def issue(self, key: str, path: Sequence[str | int], message: str) -> SpecIssue:
        """An issue at `path` of the document of `key` (a composition REF, "envs/<name>" or a file)."""
        file = self.sources.get(key, key)
        doc = self.documents.get(file)
        if doc is None:
            return SpecIssue(file, None, None, message)
        return doc.issue(path, message)


def inspect_module(root: Path, ref: str) -> ModulePath | None:
    """What `ref` is on disk (None when it does not exist)."""
    path = root / ref
    if path.is_file():
        if path.suffix in YAML_SUFFIXES:
            inferred = "ansible" if ref.startswith("playbooks/") else None
            return ModulePath(
                ref,
                "file",
                inferred,
                frozenset({"ansible", "kubernetes", "native"}),
                "a playbook or manifest",
            )
        return ModulePath(ref, "file", None, frozenset({"native"}), "a file")
    if not path.is_dir():
        return None
    try:
        names = set(os.listdir(path))
    except OSError:
        return None
    kinds: list[str] = []
    if any(n.endswith((".tf", ".tf.json")) for n in names):
        kinds.append("terraform")
    if names & {"Pulumi.yaml", "Pulumi.yml"}:
        kinds.append("pulumi")
    has_kustomization = bool(names & {"kustomization.yaml", "kustomization.yml", "Kustomization"})
    if has_kustomization:
        kinds.append("kubernetes")
    engines = set(kinds) | {"native"}
    if any(n.endswith(YAML_SUFFIXES) for n in names):
        engines.add("kubernetes")
    return ModulePath(ref, "dir", kinds[0] if kinds else None, frozenset(engines), "a directory")


ENGINE_NEEDS = {
    "terraform": "a directory of Terraform files (*.tf)",
    "pulumi": "a directory with a Pulumi.yaml",
    "ansible": "a playbook file (.yml or .yaml)",
    "kubernetes": "a directory with kustomization.yaml or *.yaml manifests, or one manifest file",
    "native": "an existing path",
}


def _yaml_files(base: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / n for n in sorted(filenames) if n.endswith(YAML_SUFFIXES))
    return found


def _read(root: Path, path: Path, issues: list[SpecIssue]) -> YamlDocument | None:
    rel = path.relative_to(root).as_posix()
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            issues.append(SpecIssue(rel, None, None, f"file is larger than {MAX_DOCUMENT_BYTES} bytes"))
            return None
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        issues.append(SpecIssue(rel, None, None, "file is not UTF-8 text"))
        return None
    except OSError as exc:
        issues.append(SpecIssue(rel, None, None, f"cannot read: {exc.strerror}"))
        return None
    try:
        return parse(text, file=rel)
    except SpecError as exc:
        issues.extend(exc.issues)
        return None


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.issues: list[SpecIssue] = []
        self.documents: dict[str, YamlDocument] = {}
        self.sources: dict[str, str] = {}
        self.compositions: dict[str, Composition] = {}
        self.environments: dict[str, Environment] = {}
        self.modules: dict[str, ModulePath | None] = {}
        self.config = RepoConfig()

    # -------------------------------------------------------------------- reading documents

    def read_config(self) -> None:
        present = [n for n in CONFIG_FILES if (self.root / n).is_file()]
        if len(present) > 1:
            self.issues.append(
                SpecIssue(present[1], None, None, f"both {' and '.join(present)} exist; keep one")
            )
        if not present:
            return
        doc = _read(self.root, self.root / present[0], self.issues)
        if doc is None:
            return
        self.documents[doc.file] = doc
        self.sources[".xcf"] = doc.file
        result = validate_document(doc, RepoConfig)
        if isinstance(result, list):
            self.issues.extend(result)
        else:
            self.config = result

    def read_compositions(self) -> None:
        base = self.root / "compositions"
        for path in _yaml_files(base) if base.is_dir() else []:
            rel = path.relative_to(self.root).as_posix()
            ref = rel.rsplit(".", 1)[0]
            if ref in self.sources:
                self.issues.append(
                    SpecIssue(rel, None, None, f"{self.sources[ref]} defines the same composition {ref}")
                )
                continue
            self.sources[ref] = rel  # known even when broken: references to it say "not valid"
            doc = _read(self.root, path, self.issues)
            if doc is None:
                continue
            self.documents[doc.file] = doc
            result = validate_document(doc, Composition)
            if isinstance(result, list):
                self.issues.extend(result)
            else:
                self.compositions[ref] = result

    def read_environments(self) -> None:
        base = self.root / "envs"
        if not base.is_dir():
            return
        for entry in sorted(base.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            files = [entry / n for n in ("environment.yaml", "environment.yml") if (entry / n).is_file()]
            rel_dir = entry.relative_to(self.root).as_posix()
            if not files:
                self.issues.append(
                    SpecIssue(rel_dir, None, None, "no environment.yaml in this environment directory")
                )
                continue
            doc = _read(self.root, files[0], self.issues)
            if doc is None:
                continue
            key = f"envs/{entry.name}"
            self.documents[doc.file] = doc
            self.sources[key] = doc.file
            result = validate_document(doc, Environment)
            if isinstance(result, list):
                self.issues.extend(result)
                continue
            if result.metadata.name != entry.name:
                self.issues.append(
                    doc.issue(
                        ("metadata", "name"),
                        f"environment name {result.metadata.name!r} must equal its directory name {entry.name!r}",
                    )
                )
                continue
            self.environments[entry.name] = result

    def read_policies(self) -> dict[str, str]:
        files: dict[str, str] = {}
        base = self.root / "policies"
        if not base.is_dir():
            return files
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.endswith(".rego"):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                try:
                    files[rel] = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    self.issues.append(SpecIssue(rel, None, None, f"cannot read policy: {exc}"))
        return files

    # -------------------------------------------------------------------- cross-document checks

    def module_path(self, ref: str) -> ModulePath | None:
        if ref not in self.modules:
            self.modules[ref] = inspect_module(self.root, ref)
        return self.modules[ref]

    def check_config(self) -> None:
        spec = self.config.spec
        windows = spec.change_windows
        for layer, row in spec.matrix.items():
            if row.change_window and row.change_window not in windows:
                self.issues.append(
                    self.issue(
                        ".xcf",
                        as_written(
                            self.documents[self.sources[".xcf"]], ("spec", "matrix", layer, "changeWindow")
                        ),
                        f"unknown change window {row.change_window!r} ({_known(windows)})",
                    )
                )
        seen: set[str] = set()
        for index, policy_set in enumerate(spec.policy_sets):
            if policy_set.name in seen:
                self.issues.append(
                    self.issue(
                        ".xcf",
                        ("spec", "policySets", index, "name"),
                        f"duplicate policy set {policy_set.name!r}",
                    )
                )
            seen.add(policy_set.name)
            if not (self.root / policy_set.path).exists():
                self.issues.append(
                    self.issue(
                        ".xcf", ("spec", "policySets", index, "path"), f"{policy_set.path} does not exist"
                    )
                )

    def issue(self, key: str, path: Sequence[str | int], message: str) -> SpecIssue:
        file = self.sources.get(key, key)
        doc = self.documents.get(file)
        return doc.issue(path, message) if doc else SpecIssue(file, None, None, message)

    def check_composition(self, ref: str, comp: Composition) -> None:
        spec = comp.spec
        names: dict[str, int] = {}
        for i, module in enumerate(spec.modules):
            where = ("spec", "modules", i)
            name = module.module_name
            if name in names:
                field_path = (*where, "name") if module.name else (*where, "ref")
                self.issues.append(
                    self.issue(
                        ref, field_path, f"two modules are named {name!r} (modules[{names[name]}]); set name"
                    )
                )
            names.setdefault(name, i)
            found = self.module_path(module.ref)
            if found is None:
                self.issues.append(
                    self.issue(ref, (*where, "ref"), f"module path {module.ref} does not exist")
                )
            elif module.engine and module.engine not in found.engines:
                self.issues.append(
                    self.issue(
                        ref,
                        (*where, "engine"),
                        f"engine {module.engine} needs {ENGINE_NEEDS[module.engine]}, but {module.ref} is "
                        f"{found.needs} that does not hold one",
                    )
                )
            window = module.policies.change_window if module.policies else None
            if window and window not in self.config.spec.change_windows:
                self.issues.append(
                    self.issue(
                        ref,
                        (*where, "policies", "changeWindow"),
                        f"unknown change window {window!r} ({_known(self.config.spec.change_windows)})",
                    )
                )
        for i, module in enumerate(spec.modules):
            for k, dep in enumerate(module.depends_on):
                if dep not in names:
                    self.issues.append(
                        self.issue(
                            ref,
                            ("spec", "modules", i, "dependsOn", k),
                            f"no module named {dep!r} in this composition ({_known(names)})",
                        )
                    )
                elif dep == module.module_name:
                    self.issues.append(
                        self.issue(
                            ref, ("spec", "modules", i, "dependsOn", k), "a module cannot depend on itself"
                        )
                    )
        for j, dependency in enumerate(spec.dependencies):
            where_dep = ("spec", "dependencies", j, "ref")
            target = self.compositions.get(dependency.ref)
            if dependency.ref == ref:
                self.issues.append(self.issue(ref, where_dep, "a composition cannot depend on itself"))
            elif target is None:
                message = (
                    f"{dependency.ref} is not a valid composition (see its own errors)"
                    if dependency.ref in self.sources
                    else f"no composition {dependency.ref} (expected a file {dependency.ref}.yaml)"
                )
                self.issues.append(self.issue(ref, where_dep, message))
            elif LAYER_RANK[target.spec.lifecycle] > LAYER_RANK[spec.lifecycle]:
                self.issues.append(
                    self.issue(
                        ref,
                        where_dep,
                        f"a {spec.lifecycle} composition cannot depend on {dependency.ref} "
                        f"({target.spec.lifecycle}): the layer order is Foundation -> Platform -> "
                        "Application/Ephemeral -> Config",
                    )
                )
        for i, env in enumerate(spec.environments or []):
            if env not in self.environments and f"envs/{env}" not in self.sources:
                self.issues.append(
                    self.issue(
                        ref,
                        ("spec", "environments", i),
                        f"unknown environment {env!r} ({_known(self.envs())})",
                    )
                )

    def envs(self) -> list[str]:
        return sorted(k.removeprefix("envs/") for k in self.sources if k.startswith("envs/"))

    def check_environment(self, name: str, env: Environment) -> None:
        key = f"envs/{name}"
        listed: dict[str, int] = {}
        node_names: dict[str, str] = {}
        for i, item in enumerate(env.spec.compositions):
            where = ("spec", "compositions", i, "ref")
            if item.ref in listed:
                self.issues.append(
                    self.issue(
                        key, where, f"{item.ref} is listed twice (also at compositions[{listed[item.ref]}])"
                    )
                )
                continue
            listed[item.ref] = i
            comp = self.compositions.get(item.ref)
            if comp is None:
                message = (
                    f"{item.ref} is not a valid composition (see its own errors)"
                    if item.ref in self.sources
                    else f"no composition {item.ref} (expected a file {item.ref}.yaml)"
                )
                self.issues.append(self.issue(key, where, message))
                continue
            allowed = comp.spec.environments
            if allowed is not None and name not in allowed:
                self.issues.append(
                    self.issue(
                        key,
                        where,
                        f"{item.ref} is not meant for environment {name!r}: its spec.environments lists "
                        f"{', '.join(allowed) or 'none'} ({self.sources[item.ref]})",
                    )
                )
            other = node_names.get(comp.metadata.name)
            if other is not None:
                self.issues.append(
                    self.issue(
                        key,
                        where,
                        f"{item.ref} and {other} share metadata.name {comp.metadata.name!r}; node keys in an "
                        "environment must be unique",
                    )
                )
            node_names[comp.metadata.name] = item.ref
        for item in env.spec.compositions:
            comp = self.compositions.get(item.ref)
            for dependency in comp.spec.dependencies if comp else []:
                if dependency.ref in self.compositions and dependency.ref not in listed:
                    self.issues.append(
                        self.issue(
                            key,
                            ("spec", "compositions", listed[item.ref], "ref"),
                            f"{item.ref} depends on {dependency.ref}, which environment {name!r} does not list",
                        )
                    )

    def check_engines(self, repo: Repository) -> None:
        """The engine each module ends up with (matrix, repo, inference or explicit) can run its path."""
        for ref, comp in repo.compositions.items():
            for i, module in enumerate(comp.spec.modules):
                found = repo.modules.get(module.ref)
                if found is None or module.engine:
                    continue  # missing path or explicit engine: reported above
                engine = router.route_module(repo, ref, module.module_name).engine
                if engine not in found.engines:
                    self.issues.append(
                        self.issue(
                            ref,
                            ("spec", "modules", i, "ref"),
                            f"{module.ref} is {found.needs} that engine {engine} (the {comp.spec.lifecycle} "
                            f"default) cannot run: it needs {ENGINE_NEEDS[engine]}; set engine explicitly",
                        )
                    )


def _known(names: object) -> str:
    listed = sorted(names) if isinstance(names, dict | set | list) else []
    return "known: " + ", ".join(map(str, listed)) if listed else "none are defined"


def load_repository(root: Path) -> Repository:
    """Every document of the repository at `root`, validated and cross-checked; SpecError with all
    issues otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise SpecError([SpecIssue(str(root), None, None, "repository directory does not exist")])
    loader = _Loader(root)
    loader.read_config()
    loader.read_compositions()
    loader.read_environments()
    policy_files = loader.read_policies()
    loader.check_config()
    for ref, comp in loader.compositions.items():
        loader.check_composition(ref, comp)
    for name, env in loader.environments.items():
        loader.check_environment(name, env)
    repo = Repository(
        root=root,
        config=loader.config,
        compositions=loader.compositions,
        environments=loader.environments,
        sources=loader.sources,
        policy_files=policy_files,
        documents=loader.documents,
        modules={ref: found for ref, found in loader.modules.items() if found is not None},
    )
    loader.check_engines(repo)
    if loader.issues:
        raise SpecError(loader.issues)
    return repo
