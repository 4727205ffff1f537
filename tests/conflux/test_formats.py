"""Content formats: every format's good and bad content (message and where), schemas, diffs."""

from __future__ import annotations

import json

import pytest

from xcloudflow.conflux.formats import FORMATS, ContentError, check_format, check_schema, parse, validate
from xcloudflow.conflux.textdiff import unified
from xcloudflow.errors import Invalid


def _error(content: str, fmt: str) -> ContentError:
    with pytest.raises(ContentError) as caught:
        parse(content, fmt)
    err = caught.value
    assert err.status == 422
    assert err.code == "invalid_content"
    assert err.details["format"] == fmt
    assert err.details["path"] == err.path
    return err


def test_check_format_names_the_known_formats() -> None:
    assert check_format("json") == "json"
    assert check_format(" YAML ") == "yaml"
    with pytest.raises(Invalid) as caught:
        check_format("xml")
    assert caught.value.message == "unknown format 'xml' (json, yaml, toml, properties, ini, text)"
    with pytest.raises(Invalid):
        parse("<a/>", "xml")
    assert FORMATS == ("json", "yaml", "toml", "properties", "ini", "text")


# ---------------------------------------------------------------------------------------------- json


def test_json_good() -> None:
    assert parse('{"pool": {"size": 5}, "hosts": ["a", "b"]}', "json") == {
        "pool": {"size": 5},
        "hosts": ["a", "b"],
    }
    assert parse("[1, 2]", "json") == [1, 2]


def test_json_syntax_error_has_line_and_column() -> None:
    err = _error('{\n  "a": 1,\n  "b": \n}', "json")
    assert err.path == "line 4, column 1"
    assert err.message == "invalid json at line 4, column 1: Expecting value"


def test_json_duplicate_key_is_an_error_with_its_position() -> None:
    err = _error('{\n  "a": 1,\n  "a": 2\n}', "json")
    assert err.message == "invalid json at line 3, column 3: duplicate key 'a'"


def test_json_empty_content() -> None:
    assert _error("", "json").path == "line 1, column 1"


# ---------------------------------------------------------------------------------------------- yaml


def test_yaml_good_and_merge_keys_are_not_duplicates() -> None:
    doc = parse("base: &b {x: 1, y: 2}\nserver:\n  <<: *b\n  x: 3\n", "yaml")
    assert doc == {"base": {"x": 1, "y": 2}, "server": {"x": 3, "y": 2}}
    assert parse("- a\n- b\n", "yaml") == ["a", "b"]


def test_yaml_duplicate_key_is_an_error() -> None:
    err = _error("pool:\n  size: 1\n  max: 2\n  size: 3\n", "yaml")
    assert err.path == "line 4, column 3"
    assert (
        err.message
        == "invalid yaml at line 4, column 3: while constructing a mapping, found duplicate key 'size'"
    )


def test_yaml_nested_duplicate_in_a_list_item() -> None:
    err = _error("items:\n  - name: a\n    name: b\n", "yaml")
    assert err.path == "line 3, column 5"
    assert "duplicate key 'name'" in err.message


def test_yaml_syntax_error() -> None:
    err = _error("a: 1\nb: [1, 2\nc: 3\n", "yaml")
    assert err.path is not None and err.path.startswith("line ")
    assert "while parsing a flow sequence" in err.message
    assert "expected ',' or ']'" in err.message


def test_yaml_more_than_one_document_is_an_error() -> None:
    err = _error("a: 1\n---\nb: 2\n", "yaml")
    assert err.path == "line 2, column 1"
    assert "expected a single document in the stream" in err.message


def test_yaml_refuses_python_tags() -> None:
    err = _error("a: !!python/object/apply:os.system ['true']\n", "yaml")
    assert "could not determine a constructor" in err.message
    assert err.path == "line 1, column 4"


# ---------------------------------------------------------------------------------------------- toml


def test_toml_good() -> None:
    assert parse('[pool]\nsize = 5\nname = "db"\n', "toml") == {"pool": {"size": 5, "name": "db"}}


@pytest.mark.parametrize(
    ("content", "path", "message"),
    [
        ("a = 1\nb = \n", "line 2, column 5", "Invalid value"),
        ("[x]\na = 1\n[x]\n", "line 3, column 3", "Cannot declare ('x',) twice"),
        ("a = 1\na = 2\n", "line 2, column 6", "Cannot overwrite a value"),
        ('a = "open', "line 1, column 10", "Unterminated string"),
    ],
)
def test_toml_errors(content: str, path: str, message: str) -> None:
    err = _error(content, "toml")
    assert err.path == path
    assert err.message == f"invalid toml at {path}: {message}"


# ---------------------------------------------------------------------------------------- properties


def test_properties_java_syntax() -> None:
    content = (
        "# a comment\n"
        "   ! another comment\n"
        "\n"
        "key1 = v1\n"
        "key2:v2\n"
        "key3 v3\n"
        "key4\\=x\\:y\\ z = a\\\n"
        "     b\\\\\n"
        "unicode=caf\\u00e9\\tend\n"
        "empty\n"
        "fruits   apple, banana, \\\n"
        "         pear\n"
        "url = http://example.com/a#b\n"
        "trailing = value   \n"
        "crlf = 1\r\n"
        "odd\\\\\\\n"
        "  = joined\n"
    )
    assert parse(content, "properties") == {
        "key1": "v1",
        "key2": "v2",
        "key3": "v3",
        "key4=x:y z": "ab\\",
        "unicode": "café\tend",
        "empty": "",
        "fruits": "apple, banana, pear",
        "url": "http://example.com/a#b",
        "trailing": "value   ",
        "crlf": "1",
        "odd\\": "joined",
    }


def test_properties_comment_marker_inside_a_continuation_is_content() -> None:
    assert parse("a = 1,\\\n  # not a comment\n", "properties") == {"a": "1,# not a comment"}


def test_properties_form_feed_is_whitespace_not_a_line_break() -> None:
    assert parse("a\fb\n\f c = d\r\ne = \\\r\n  f\rg\n", "properties") == {
        "a": "b",
        "c": "d",
        "e": "f",
        "g": "",
    }


def test_properties_continuation_at_end_of_file() -> None:
    assert parse("a = 1\\", "properties") == {"a": "1"}


def test_properties_malformed_unicode_escape() -> None:
    err = _error("a = 1\n  b = x\\u12G4\n", "properties")
    assert err.path == "line 2, column 8"
    assert err.message == "invalid properties at line 2, column 8: malformed \\uXXXX escape '\\\\u12G4'"


def test_properties_short_unicode_escape_at_end() -> None:
    err = _error("a = \\u12", "properties")
    assert err.path == "line 1, column 5"


def test_properties_duplicate_key() -> None:
    err = _error("a = 1\nb = 2\n  a: 3\n", "properties")
    assert err.path == "line 3, column 3"
    assert "duplicate key 'a'" in err.message


def test_properties_empty_key() -> None:
    err = _error("a = 1\n= 2\n", "properties")
    assert err.message == "invalid properties at line 2, column 1: empty key"


# ----------------------------------------------------------------------------------------------- ini


def test_ini_good_keeps_case_and_inherits_defaults() -> None:
    doc = parse("[DEFAULT]\nTimeout = 5\n[db]\nHost = x\nurl = a%(b)s\n[cache]\nsize=1\n", "ini")
    assert doc == {
        "DEFAULT": {"Timeout": "5"},
        "db": {"Host": "x", "url": "a%(b)s", "Timeout": "5"},
        "cache": {"size": "1", "Timeout": "5"},
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[s]\na=1\n[s]\n", "invalid ini at line 3: section 's' already exists"),
        ("[s]\na=1\na=2\n", "invalid ini at line 3: option 'a' in section 's' already exists"),
        ("a=1\n[s]\n", "invalid ini at line 1: no section header before 'a=1'"),
        (
            "[s]\na=1\nbad line\n",
            "invalid ini at line 3: cannot parse 'bad line' (neither [section], key = value, nor a continuation)",
        ),
        ("[s]\nbad\n[t\n", "invalid ini at line 2: cannot parse 'bad' (line 2); cannot parse '[t' (line 3)"),
    ],
)
def test_ini_errors(content: str, message: str) -> None:
    err = _error(content, "ini")
    assert err.message == message
    assert err.path == message.split(" at ", 1)[1].split(":", 1)[0]


def test_text_is_the_string_itself() -> None:
    assert parse("anything {at all", "text") == "anything {at all"


# -------------------------------------------------------------------------------------------- schemas

SCHEMA = json.dumps(
    {
        "type": "object",
        "required": ["name", "pool"],
        "properties": {
            "name": {"type": "string"},
            "pool": {
                "type": "object",
                "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 1}},
            },
            "hosts": {"type": "array", "items": {"type": "string", "format": "ipv4"}},
            "odd key": {"type": "integer"},
        },
        "additionalProperties": False,
    }
)


def test_check_schema_returns_the_schema() -> None:
    assert check_schema(SCHEMA)["required"] == ["name", "pool"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": ', "schema is not valid JSON at line 1, column 10: Expecting value"),
        ('{"type": "x", "type": "y"}', "schema is not valid JSON at line 1, column 15: duplicate key 'type'"),
        ("[1]", "schema must be a JSON object, got an array"),
        ("true", "schema must be a JSON object, got a boolean"),
        (
            '{"properties": {"a": {"minimum": "1"}}}',
            "schema is not a valid JSON Schema (Draft 2020-12) at $.properties.a.minimum: '1' is not of type 'number'",
        ),
    ],
)
def test_check_schema_errors(text: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_schema(text)
    assert not isinstance(caught.value, ContentError)
    assert caught.value.message == message


def test_validate_without_schema_only_parses() -> None:
    validate('{"x": 1}', "json", None)
    with pytest.raises(ContentError):
        validate('{"x": ', "json", None)


def test_validate_good_content_in_every_structured_format() -> None:
    schema = check_schema(SCHEMA)
    validate('name = "db"\n[pool]\nsize = 3\n', "toml", schema)
    validate("name: db\npool: {size: 3}\nhosts: [10.0.0.1]\n", "yaml", schema)
    validate('{"name": "db", "pool": {"size": 3}}', "json", schema)


def test_validate_lists_every_schema_error_sorted_by_path() -> None:
    schema = check_schema(SCHEMA)
    content = (
        "pool:\n  size: 0\nhosts: [10.0.0.1, 300.1.1.1, x, y, z, a, b, c, d, e, f, g]\nodd key: x\nextra: 1\n"
    )
    with pytest.raises(ContentError) as caught:
        validate(content, "yaml", schema)
    err = caught.value
    paths = [e["path"] for e in err.details["errors"]]
    assert paths == [
        "$",
        "$",
        "$.hosts[1]",
        "$.hosts[2]",
        "$.hosts[3]",
        "$.hosts[4]",
        "$.hosts[5]",
        "$.hosts[6]",
        "$.hosts[7]",
        "$.hosts[8]",
        "$.hosts[9]",
        "$.hosts[10]",
        "$.hosts[11]",
        "$['odd key']",
        "$.pool.size",
    ]
    assert err.path == "$"
    assert err.status == 422
    assert err.message.startswith("content does not match the schema (15 errors): $: ")
    assert "$.pool.size: 0 is less than the minimum of 1" in err.message
    assert "$.hosts[1]: '300.1.1.1' is not a 'ipv4'" in err.message
    assert "$['odd key']: 'x' is not of type 'integer'" in err.message
    assert "$: 'name' is a required property" in err.message
    assert "Additional properties are not allowed ('extra' was unexpected)" in err.message


def test_validate_single_error_message() -> None:
    schema = check_schema(SCHEMA)
    with pytest.raises(ContentError) as caught:
        validate('name = "db"\n[pool]\nsize = 0\n', "toml", schema)
    assert (
        caught.value.message
        == "content does not match the schema (1 error): $.pool.size: 0 is less than the minimum of 1"
    )
    assert caught.value.path == "$.pool.size"


def test_validate_properties_and_ini_against_a_schema() -> None:
    flat = check_schema(
        '{"type": "object", "required": ["db.url"], "additionalProperties": {"type": "string"}}'
    )
    validate("db.url = jdbc:x\n", "properties", flat)
    with pytest.raises(ContentError) as caught:
        validate("other = 1\n", "properties", flat)
    assert caught.value.path == "$"
    sections = check_schema('{"type": "object", "properties": {"db": {"required": ["host"]}}}')
    with pytest.raises(ContentError) as caught:
        validate("[db]\nport = 5\n", "ini", sections)
    assert caught.value.message.endswith("$.db: 'host' is a required property")


def test_validate_parse_error_comes_before_schema() -> None:
    with pytest.raises(ContentError) as caught:
        validate("a: [", "yaml", check_schema(SCHEMA))
    assert caught.value.path is not None and caught.value.path.startswith("line ")


def test_validate_never_fetches_a_remote_ref() -> None:
    schema = check_schema('{"$ref": "https://example.invalid/schema.json"}')
    with pytest.raises(Invalid) as caught:
        validate("{}", "json", schema)
    assert not isinstance(caught.value, ContentError)
    assert "unresolvable reference 'https://example.invalid/schema.json'" in caught.value.message


def test_validate_local_refs_work() -> None:
    schema = check_schema(
        '{"$defs": {"port": {"type": "integer", "maximum": 65535}}, "properties": {"p": {"$ref": "#/$defs/port"}}}'
    )
    validate('{"p": 80}', "json", schema)
    with pytest.raises(ContentError) as caught:
        validate('{"p": 70000}', "json", schema)
    assert caught.value.path == "$.p"


# ---------------------------------------------------------------------------------------------- diff


def test_unified_diff() -> None:
    assert unified("a\nb\n", "a\nb\n", old_label="v1", new_label="v2") == ""
    diff = unified("a\nb\nc\n", "a\nB\nc\n", old_label="v1", new_label="v2")
    assert diff == "--- v1\n+++ v2\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"


def test_unified_diff_marks_a_missing_final_newline() -> None:
    diff = unified("a\n", "a", old_label="v1", new_label="v2")
    assert diff == "--- v1\n+++ v2\n@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n"
    assert unified("", "x\n", old_label="v1", new_label="v2") == "--- v1\n+++ v2\n@@ -0,0 +1 @@\n+x\n"


def test_validate_message_stops_listing_after_fifty_errors_but_details_keep_all() -> None:
    schema = check_schema('{"type": "array", "items": {"type": "integer"}}')
    with pytest.raises(ContentError) as caught:
        validate(json.dumps(["x"] * 120), "json", schema)
    err = caught.value
    assert len(err.details["errors"]) == 120
    assert err.message.startswith("content does not match the schema (120 errors): $[0]: 'x' is not of type")
    assert "$[49]: " in err.message and "$[50]: " not in err.message
    assert err.message.endswith("; and 70 more (all in details.errors)")
