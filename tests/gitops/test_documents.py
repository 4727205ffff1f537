"""Finding ConfluxConfig documents: the seed's example as is, other YAML ignored, bad documents as
problems with file and line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from tests.gitops.conftest import SEED_CONFIG
from xcloudflow.gitops.documents import ConfigDocument, DocumentProblem, parse_file, scan


def one(text: str, file: str = "x.yaml") -> ConfigDocument | DocumentProblem:
    found = parse_file(textwrap.dedent(text).lstrip("\n"), file=file)
    assert len(found) == 1, found
    return found[0]


def test_the_seed_example_validates_as_is() -> None:
    doc = one(SEED_CONFIG, "production/database.yaml")
    assert isinstance(doc, ConfigDocument), doc
    assert doc.address == "my-tenant/app-a/production/database.toml"
    assert doc.format == "toml" and doc.stable is True
    assert doc.secrets_ref == "db-credentials" and doc.secrets_ref_line == 18
    assert doc.template.splitlines()[2] == 'password = "{{ .Secrets.database_password }}"'
    assert doc.template_line == 12  # the block's first line in the file
    assert doc.key_path == "production/database.yaml"


def test_other_yaml_is_ignored_and_unparsable_yaml_only_fails_when_it_claims_the_kind() -> None:
    assert parse_file("name: ci\non: [push]\n", file="ci.yaml") == []
    assert parse_file("kind: Deployment\napiVersion: apps/v1\n", file="d.yaml") == []
    assert parse_file("a: [unclosed\n", file="broken.yaml") == []
    problem = one("kind: ConfluxConfig\nmetadata: {name: x\n", "bad.yaml")
    assert isinstance(problem, DocumentProblem)
    assert problem.file == "bad.yaml" and problem.line is not None
    assert "invalid YAML" in problem.message


def test_missing_and_unknown_fields_are_reported_with_their_line() -> None:
    problem = one(
        """
        apiVersion: gitops.conflux.io/v1alpha1
        kind: ConfluxConfig
        metadata:
          name: app.json
        spec:
          application: app-a
          format: json
          templat:
            content: "{}"
        """
    )
    assert isinstance(problem, DocumentProblem)
    assert "spec.environment: field required" in problem.message
    assert "spec.templat: extra inputs are not permitted (line 8)" in problem.message
    assert problem.line == 5


def test_wrong_api_version_duplicate_keys_and_bad_names() -> None:
    wrong = one("apiVersion: v1\nkind: ConfluxConfig\n")
    assert isinstance(wrong, DocumentProblem) and "apiVersion 'v1' is not supported" in wrong.message
    dup = one(SEED_CONFIG.replace("  format: toml\n", "  format: toml\n  format: json\n"))
    assert isinstance(dup, DocumentProblem)
    assert (dup.line, dup.message) == (10, "spec.format: duplicate key")
    bad = one(SEED_CONFIG.replace("application: app-a", "application: 'app a'"))
    assert isinstance(bad, DocumentProblem) and bad.line == 7
    assert "spec.application 'app a' is not valid" in bad.message


def test_several_documents_in_one_file_and_defaults() -> None:
    text = """
        apiVersion: gitops.conflux.io/v1alpha1
        kind: ConfluxConfig
        metadata: {name: a.json}
        spec:
          application: app
          environment: dev
          format: json
          stable: false
          values: {size: 3}
          schema: {type: object}
          template: {content: '{"size": {{ .Values.size }}}'}
        ---
        kind: Service
        ---
        apiVersion: gitops.conflux.io/v1alpha1
        kind: ConfluxConfig
        metadata: {name: b.json, namespace: t1}
        spec: {application: app, environment: dev, format: json, template: {content: "{}"}}
        """
    found = parse_file(textwrap.dedent(text).lstrip("\n"), file="multi.yaml")
    assert [type(d).__name__ for d in found] == ["ConfigDocument", "ConfigDocument"]
    first, second = found
    assert isinstance(first, ConfigDocument) and isinstance(second, ConfigDocument)
    assert first.address == "default/app/dev/a.json" and first.stable is False
    assert first.values == {"size": 3} and first.schema is not None and '"object"' in first.schema
    assert first.template_line == 11 and first.key_path == "multi.yaml"
    assert second.address == "t1/app/dev/b.json" and second.key_path == "multi.yaml#2"


def test_scan_walks_the_path_sorted_and_skips_links_and_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b" / "db.yaml").write_text(SEED_CONFIG)
    (tmp_path / "a.yml").write_text(SEED_CONFIG.replace("database.toml", "other.toml"))
    (tmp_path / ".hidden" / "x.yaml").write_text(SEED_CONFIG)
    (tmp_path / "notes.txt").write_text(SEED_CONFIG)
    os.symlink(tmp_path / "b" / "db.yaml", tmp_path / "link.yaml")
    assert [d.file for d in scan(tmp_path, "")] == ["a.yml", "b/db.yaml"]
    assert [d.file for d in scan(tmp_path, "b")] == ["b/db.yaml"]
