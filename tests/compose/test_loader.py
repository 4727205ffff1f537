"""Loading a whole repository: the example loads; every cross-document problem is reported with the
file, line and field where it must be fixed, all of them at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xcloudflow.compose.loader import load_repository
from xcloudflow.compose.yamlsrc import SpecError

from .conftest import Write


def problems(root: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_repository(root)
    return [str(i) for i in caught.value.issues]


def test_the_example_repository_loads(example: Path) -> None:
    repo = load_repository(example)
    assert sorted(repo.compositions) == [
        "compositions/apps/web",
        "compositions/config/app-config",
        "compositions/ephemeral/preview",
        "compositions/foundation/network",
        "compositions/platform/database",
    ]
    assert sorted(repo.environments) == ["dev", "prod"]
    assert repo.sources["compositions/platform/database"] == "compositions/platform/database.yaml"
    assert repo.sources["envs/prod"] == "envs/prod/environment.yaml"
    assert repo.config.spec.state_backend.project == "platform"
    assert set(repo.policy_files) >= {
        "policies/security/protect_foundation.rego",
        "policies/security/inputs.rego",
        "policies/cost/budget.rego",
    }
    assert "package" in repo.policy_files["policies/cost/budget.rego"]
    assert repo.modules["modules/network"].inferred == "terraform"
    assert repo.modules["playbooks/app-config.yml"].inferred == "ansible"


def test_a_repository_without_xcf_yaml_uses_defaults(example: Path) -> None:
    (example / ".xcf.yaml").unlink()
    shutil.rmtree(example / "policies", ignore_errors=True)
    repo = load_repository(example)
    assert repo.config.spec.state_backend.project == "compose"
    assert repo.config.spec.defaults.concurrency == 4
    assert repo.policy_files == {}


def test_invalid_yaml_in_a_composition(example: Path, write: Write) -> None:
    write(
        "compositions/apps/web.yaml",
        "apiVersion: xcloudflow.io/v1alpha1\nkind: Composition\nmetadata: {name: web\n",
    )
    found = problems(example)
    assert found[0].startswith("compositions/apps/web.yaml:4: invalid YAML: ")
    # environments that list the broken composition say so, pointing at their own line
    assert (
        "envs/prod/environment.yaml:14: spec.compositions[2].ref: compositions/apps/web is not a valid "
        in (" ".join(found))
    )


def test_unknown_engine(example: Path, write: Write) -> None:
    path = example / "compositions/apps/web.yaml"
    path.write_text(path.read_text().replace("engine: terraform", "engine: helm"))
    found = problems(example)
    assert found[0] == (
        "compositions/apps/web.yaml:12: spec.modules[0].engine: unknown engine 'helm' (expected one of "
        "'terraform', 'pulumi', 'ansible', 'kubernetes', 'native')"
    )


def test_missing_module_path(example: Path) -> None:
    shutil.rmtree(example / "modules/web")
    assert problems(example) == [
        "compositions/apps/web.yaml:11: spec.modules[0].ref: module path modules/web does not exist"
    ]


def test_engine_that_cannot_run_the_module_path(example: Path) -> None:
    path = example / "compositions/config/app-config.yaml"
    path.write_text(path.read_text().replace("engine: ansible", "engine: terraform"))
    assert problems(example) == [
        "compositions/config/app-config.yaml:10: spec.modules[0].engine: engine terraform needs a directory of "
        "Terraform files (*.tf), but playbooks/app-config.yml is a playbook or manifest that does not hold one"
    ]


def test_matrix_engine_that_cannot_run_the_module_path(example: Path, write: Write) -> None:
    # Application's matrix engine is kubernetes; modules/web holds only *.tf and no engine is given...
    # ...but the files say terraform, and inference wins over the matrix. An empty directory does not.
    (example / "modules/empty").mkdir()
    (example / "modules/empty/README.md").write_text("nothing here\n")
    path = example / "compositions/apps/web.yaml"
    path.write_text(
        path.read_text().replace("ref: modules/web\n      engine: terraform\n", "ref: modules/empty\n")
    )
    assert problems(example) == [
        "compositions/apps/web.yaml:11: spec.modules[0].ref: modules/empty is a directory that engine kubernetes "
        "(the Application default) cannot run: it needs a directory with kustomization.yaml or *.yaml manifests, "
        "or one manifest file; set engine explicitly"
    ]


def test_composition_refers_to_an_unknown_environment(example: Path) -> None:
    path = example / "compositions/ephemeral/preview.yaml"
    path.write_text(path.read_text().replace("environments: [dev]", "environments: [dev, staging]"))
    assert problems(example) == [
        "compositions/ephemeral/preview.yaml:8: spec.environments[1]: unknown environment 'staging' "
        "(known: dev, prod)"
    ]


def test_environment_lists_a_composition_not_meant_for_it(example: Path) -> None:
    path = example / "envs/prod/environment.yaml"
    path.write_text(path.read_text() + "    - ref: compositions/ephemeral/preview\n")
    assert problems(example) == [
        "envs/prod/environment.yaml:18: spec.compositions[4].ref: compositions/ephemeral/preview is not meant "
        "for environment 'prod': its spec.environments lists dev (compositions/ephemeral/preview.yaml)"
    ]


def test_environment_refers_to_an_unknown_composition(example: Path) -> None:
    path = example / "envs/dev/environment.yaml"
    path.write_text(path.read_text() + "    - ref: compositions/apps/shop.yaml\n")
    assert problems(example) == [
        "envs/dev/environment.yaml:17: spec.compositions[5].ref: no composition compositions/apps/shop "
        "(expected a file compositions/apps/shop.yaml)"
    ]


def test_environment_missing_a_dependency(example: Path) -> None:
    path = example / "envs/dev/environment.yaml"
    text = path.read_text().replace(
        "    - ref: compositions/foundation/network\n      inputs: {cidr: 10.10.0.0/16}\n", ""
    )
    path.write_text(text)
    assert problems(example) == [
        "envs/dev/environment.yaml:10: spec.compositions[0].ref: compositions/platform/database depends on "
        "compositions/foundation/network, which environment 'dev' does not list"
    ]


def test_environment_name_must_match_its_directory(example: Path) -> None:
    shutil.move(example / "envs/dev", example / "envs/development")
    assert problems(example) == [
        "compositions/ephemeral/preview.yaml:8: spec.environments[0]: unknown environment 'dev' "
        "(known: development, prod)",
        "envs/development/environment.yaml:4: metadata.name: environment name 'dev' must equal its directory "
        "name 'development'",
    ]


def test_environment_directory_without_environment_yaml(example: Path) -> None:
    (example / "envs/qa").mkdir()
    assert problems(example) == ["envs/qa: no environment.yaml in this environment directory"]


def test_dependency_on_an_unknown_composition_and_against_the_layer_order(
    example: Path, write: Write
) -> None:
    write(
        "compositions/foundation/dns.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: dns}
        spec:
          lifecycle: IaaS
          modules:
            - ref: modules/network
          dependencies:
            - ref: compositions/platform/database
            - ref: compositions/foundation/nothing
            - ref: compositions/foundation/dns
        """,
    )
    assert problems(example) == [
        "compositions/foundation/dns.yaml:9: spec.dependencies[0].ref: a Foundation composition cannot depend "
        "on compositions/platform/database (Platform): the layer order is Foundation -> Platform -> "
        "Application/Ephemeral -> Config",
        "compositions/foundation/dns.yaml:10: spec.dependencies[1].ref: no composition "
        "compositions/foundation/nothing (expected a file compositions/foundation/nothing.yaml)",
        "compositions/foundation/dns.yaml:11: spec.dependencies[2].ref: a composition cannot depend on itself",
    ]


def test_module_names_depends_on_and_change_windows(example: Path, write: Write) -> None:
    write(
        "compositions/platform/cache.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: cache}
        spec:
          lifecycle: Platform
          modules:
            - ref: modules/database
            - ref: modules/database
            - ref: modules/web
              dependsOn: [databse, web]
              policies: {changeWindow: weekends}
        """,
    )
    assert problems(example) == [
        "compositions/platform/cache.yaml:8: spec.modules[1].ref: two modules are named 'database' "
        "(modules[0]); set name",
        "compositions/platform/cache.yaml:10: spec.modules[2].dependsOn[0]: no module named 'databse' in this "
        "composition (known: database, web)",
        "compositions/platform/cache.yaml:10: spec.modules[2].dependsOn[1]: a module cannot depend on itself",
        "compositions/platform/cache.yaml:11: spec.modules[2].policies.changeWindow: unknown change window "
        "'weekends' (known: weeknights)",
    ]


def test_two_compositions_with_the_same_name_in_one_environment(example: Path, write: Write) -> None:
    write(
        "compositions/apps/web2.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: web}
        spec:
          lifecycle: Application
          modules:
            - {ref: modules/web, engine: terraform}
        """,
    )
    path = example / "envs/dev/environment.yaml"
    path.write_text(path.read_text() + "    - ref: compositions/apps/web2\n")
    assert problems(example) == [
        "envs/dev/environment.yaml:17: spec.compositions[5].ref: compositions/apps/web2 and "
        "compositions/apps/web share metadata.name 'web'; node keys in an environment must be unique"
    ]


def test_repo_config_cross_checks(example: Path) -> None:
    path = example / ".xcf.yaml"
    text = path.read_text().replace(
        "  defaults:\n", "  matrix:\n    PaaS: {changeWindow: lunch, approval: required}\n  defaults:\n"
    )
    text = text.replace("path: policies/cost,", "path: policies/finops,")
    path.write_text(text)
    assert problems(example) == [
        ".xcf.yaml:8: spec.matrix.PaaS.changeWindow: unknown change window 'lunch' (known: weeknights)",
        ".xcf.yaml:16: spec.policySets[1].path: policies/finops does not exist",
    ]


def test_all_problems_of_all_files_are_reported_together(example: Path) -> None:
    shutil.rmtree(example / "modules/preview")
    (example / "compositions/apps/web.yaml").write_text("kind: [\n")
    env = example / "envs/prod/environment.yaml"
    env.write_text(env.read_text().replace("protected: true", "protected: maybe"))
    found = problems(example)
    files = [f.split(":", 1)[0] for f in found]
    assert "compositions/apps/web.yaml" in files
    assert "compositions/ephemeral/preview.yaml" in files
    assert "envs/prod/environment.yaml" in files
    assert any("spec.protected" in f for f in found)


def test_a_composition_defined_twice(example: Path) -> None:
    shutil.copy(example / "compositions/apps/web.yaml", example / "compositions/apps/web.yml")
    assert problems(example) == [
        "compositions/apps/web.yml: compositions/apps/web.yaml defines the same composition compositions/apps/web"
    ]


def test_missing_repository_directory(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}: repository directory does not exist"]
