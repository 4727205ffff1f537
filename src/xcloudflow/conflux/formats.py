"""Content formats of Conflux configs: parse each format strictly and validate against a JSON Schema.

Apollo and Nacos store content as opaque text; Conflux refuses, at publish, content that its own
format's parser rejects or that does not match the config's schema, and says what is wrong and where:
the parser's message with line and column, or every schema error with its JSON path
(`$.pool.size: 0 is less than the minimum of 1`). Parsing is stricter than the usual libraries where
their leniency hides mistakes: duplicate keys are an error in every format that has keys.

Pure functions over strings: never touch the database, the network (a schema `$ref` to a remote
document is not fetched) or the file system.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import tomllib
from collections.abc import Hashable, Iterable
from typing import Any

import jsonschema
import referencing.exceptions
import yaml

from xcloudflow import bounded
from xcloudflow.errors import Invalid

FORMATS = ("json", "yaml", "toml", "properties", "ini", "text")
# A message stays readable; `details.errors` lists every violation.
_LISTED_ERRORS = 50


class ContentError(Invalid):
    """Content that its format's parser or the config's schema rejects (HTTP 422).

    `path` says where: "line 3, column 7" for a parse error, the JSON path ("$.pool.size") of the first
    error for a schema violation; `details` carries `{"format", "path", "errors": [{path, message}]}`.
    """

    status = 422

    def __init__(self, message: str, *, path: str | None = None, details: Any = None) -> None:
        super().__init__(message, details=details, code="invalid_content")
        self.path = path


def check_format(name: str) -> str:
    fmt = name.strip().lower() if isinstance(name, str) else ""
    if fmt not in FORMATS:
        raise Invalid(f"unknown format {name!r} ({', '.join(FORMATS)})")
    return fmt


def _where(line: int, column: int | None = None) -> str:
    return f"line {line}" if column is None else f"line {line}, column {column}"


def _fail(fmt: str, message: str, path: str | None) -> ContentError:
    where = f" at {path}" if path else ""
    return ContentError(
        f"invalid {fmt}{where}: {message}",
        path=path,
        details={"format": fmt, "path": path, "errors": [{"path": path, "message": message}]},
    )


# ---------------------------------------------------------------------------------------------- json


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _parse_json(content: str) -> Any:
    try:
        bounded.check_json_depth(content, what="the content")
    except bounded.TooDeep as exc:
        raise _fail("json", exc.problem, _where(exc.line or 1)) from None
    try:
        return json.loads(content, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise _fail("json", exc.msg, _where(exc.lineno, exc.colno)) from None
    except _DuplicateKey as dup:
        # The decoder does not say where an object ends; find the key's second occurrence ourselves.
        raise _fail("json", f"duplicate key {dup.key!r}", _json_key_position(content, dup.key)) from None


def _json_key_position(content: str, key: str) -> str | None:
    token = json.dumps(key)
    starts = [m.start() for m in re.finditer(re.escape(token) + r"\s*:", content)]
    if len(starts) < 2:
        return None
    offset = starts[1]
    line = content.count("\n", 0, offset) + 1
    return _where(line, offset - (content.rfind("\n", 0, offset) + 1) + 1)


# ---------------------------------------------------------------------------------------------- yaml


class _StrictYamlLoader(bounded.SAFE_LOADER):  # type: ignore[misc]
    """The safe loader (libyaml's when available) refusing a mapping with the same key twice (PyYAML
    keeps the last one); documents are composed by `bounded` (depth, values, alias expansion)."""


def _construct_strict_mapping(loader: _StrictYamlLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges may be overridden by explicit keys: that is not a duplicate
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # SafeConstructor reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


_StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_strict_mapping)


def _parse_yaml(content: str) -> Any:
    try:
        return bounded.load(content, loader_class=_StrictYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        path = _where(mark.line + 1, mark.column + 1) if mark is not None else None
        problem = exc.problem or "cannot parse"
        message = f"{exc.context}, {problem}" if exc.context else str(problem)
        raise _fail("yaml", message, path) from None
    except yaml.YAMLError as exc:
        raise _fail("yaml", str(exc), None) from None


# ---------------------------------------------------------------------------------------------- toml

_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _parse_toml(content: str) -> Any:
    try:
        document = tomllib.loads(content)
        bounded.check_depth(document, what="the content")
        return document
    except bounded.TooDeep as exc:  # dotted keys and table headers nest without brackets
        raise _fail("toml", exc.problem, None) from None
    except RecursionError:  # tomllib recurses into inline arrays and tables
        raise _fail("toml", bounded.too_deep("the content").problem, None) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_WHERE.search(message)
        if found:
            raise _fail("toml", message[: found.start()], _where(int(found[1]), int(found[2]))) from None
        if message.endswith(" (at end of document)"):
            lines = content.splitlines() or [""]
            path = _where(len(lines), len(lines[-1]) + 1)
            raise _fail("toml", message.removesuffix(" (at end of document)"), path) from None
        raise _fail("toml", message, None) from None


# -------------------------------------------------------------------------------------- properties

_PROPERTIES_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_PROPERTIES_WS = " \t\f"
_PROPERTIES_EOL = re.compile(r"\r\n|\r|\n")


def _logical_lines(content: str) -> Iterable[tuple[int, list[tuple[int, int, str]]]]:
    """Java's logical lines: (first line number, [(line number, column offset, text)...]), natural lines
    joined where one ends in an odd number of backslashes; comments and blank lines are dropped."""
    # Only \n, \r and \r\n end a line (str.splitlines would also split on \f, which is whitespace here).
    natural = _PROPERTIES_EOL.split(content)
    i = 0
    while i < len(natural):
        start = i
        text = natural[i].lstrip(_PROPERTIES_WS)
        i += 1
        if not text or text[0] in "#!":
            continue
        parts = [(start + 1, len(natural[start]) - len(text), text)]
        while _continues(parts[-1][2]):
            number, offset, last = parts[-1]
            parts[-1] = (number, offset, last[:-1])
            if i >= len(natural):
                break  # a continuation at the end of the file continues into nothing
            following = natural[i].lstrip(_PROPERTIES_WS)
            parts.append((i + 1, len(natural[i]) - len(following), following))
            i += 1
        yield start + 1, parts


def _continues(text: str) -> bool:
    backslashes = len(text) - len(text.rstrip("\\"))
    return backslashes % 2 == 1


def _unescape(chars: list[tuple[str, int, int]], start: int, end: int) -> str:
    out: list[str] = []
    i = start
    while i < end:
        ch, line, col = chars[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= end:
            i += 1  # a lone backslash at the very end means nothing (Java drops it)
            continue
        nxt = chars[i + 1][0]
        if nxt == "u":
            digits = "".join(c for c, _l, _c in chars[i + 2 : i + 6])
            if i + 6 > end or not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                escape = "\\u" + digits
                raise _fail("properties", f"malformed \\uXXXX escape {escape!r}", _where(line, col))
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_PROPERTIES_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def _parse_properties(content: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for first_line, parts in _logical_lines(content):
        # Each character remembers where it came from, so errors point into the original text.
        chars: list[tuple[str, int, int]] = []
        for number, offset, text in parts:
            chars.extend((ch, number, offset + k + 1) for k, ch in enumerate(text))
        n = len(chars)
        i = 0
        while i < n:
            ch = chars[i][0]
            if ch == "\\":
                i += 2
                continue
            if ch in "=:" or ch in _PROPERTIES_WS:
                break
            i += 1
        key_end = min(i, n)
        while i < n and chars[i][0] in _PROPERTIES_WS:
            i += 1
        if i < n and chars[i][0] in "=:":
            i += 1
            while i < n and chars[i][0] in _PROPERTIES_WS:
                i += 1
        key = _unescape(chars, 0, key_end)
        value = _unescape(chars, i, n)
        where = _where(first_line, chars[0][2])
        if not key:
            raise _fail("properties", "empty key", where)
        if key in result:
            raise _fail("properties", f"duplicate key {key!r}", where)
        result[key] = value
    return result


# ----------------------------------------------------------------------------------------------- ini


class _CaseKeepingParser(configparser.ConfigParser):
    # ConfigParser lowercases option names by default; configs are read by programs in many languages
    # that do not, so Conflux keeps the names as written.
    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _parse_ini(content: str) -> dict[str, dict[str, str]]:
    parser = _CaseKeepingParser(interpolation=None, strict=True)
    try:
        parser.read_string(content, source="<content>")
    except configparser.DuplicateSectionError as exc:
        path = _where(exc.lineno) if exc.lineno else None
        raise _fail("ini", f"section {exc.section!r} already exists", path) from None
    except configparser.DuplicateOptionError as exc:
        path = _where(exc.lineno) if exc.lineno else None
        message = f"option {exc.option!r} in section {exc.section!r} already exists"
        raise _fail("ini", message, path) from None
    except configparser.MissingSectionHeaderError as exc:
        message = f"no section header before {exc.line.strip()!r}"
        raise _fail("ini", message, _where(exc.lineno)) from None
    except configparser.ParsingError as exc:
        # configparser keeps each bad line as repr(line), newline included: show the line itself.
        errors = [(int(lineno), ast.literal_eval(str(line)).rstrip("\r\n")) for lineno, line in exc.errors]
        if len(errors) == 1:
            message = f"cannot parse {errors[0][1]!r} (neither [section], key = value, nor a continuation)"
        else:
            message = "; ".join(f"cannot parse {line!r} (line {lineno})" for lineno, line in errors)
        raise _fail("ini", message, _where(errors[0][0]) if errors else None) from None
    except configparser.Error as exc:
        raise _fail("ini", exc.message, None) from None
    # What a program reading the file sees: each section with the [DEFAULT] values it inherits.
    document: dict[str, dict[str, str]] = {}
    if parser.defaults():
        document[parser.default_section] = dict(parser.defaults())
    for section in parser.sections():
        document[section] = dict(parser.items(section, raw=True))
    return document


# ------------------------------------------------------------------------------------------- public


def parse(content: str, fmt: str) -> Any:
    """The parsed document; ContentError (422) with the parser's message and where it failed."""
    fmt = check_format(fmt)
    if fmt == "json":
        return _parse_json(content)
    if fmt == "yaml":
        return _parse_yaml(content)
    if fmt == "toml":
        return _parse_toml(content)
    if fmt == "properties":
        return _parse_properties(content)
    if fmt == "ini":
        return _parse_ini(content)
    return content


def check_schema(schema_text: str) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) in `schema_text`; Invalid naming what is wrong with it."""
    bounded.check_json_depth(schema_text, what="the schema")  # json.loads would recurse (a 500)
    try:
        schema = json.loads(schema_text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise Invalid(f"schema is not valid JSON at {_where(exc.lineno, exc.colno)}: {exc.msg}") from None
    except _DuplicateKey as dup:
        where = _json_key_position(schema_text, dup.key)
        raise Invalid(
            f"schema is not valid JSON{f' at {where}' if where else ''}: duplicate key {dup.key!r}"
        ) from None
    if not isinstance(schema, dict):
        raise Invalid(f"schema must be a JSON object, got {_json_type(schema)}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise Invalid(
            f"schema is not a valid JSON Schema (Draft 2020-12) at {json_path(exc.path)}: {exc.message}"
        ) from None
    return schema


def json_path(parts: Iterable[Any]) -> str:
    """`$.pool.servers[0]['odd key']` for the path elements jsonschema reports."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(part)):
            out += f".{part}"
        else:
            out += "['" + str(part).replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def _path_key(parts: Iterable[Any]) -> tuple[tuple[int, int, str], ...]:
    # Numeric order for array indexes ($.a[2] before $.a[10]), text order for keys.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def validate(content: str, fmt: str, schema: dict[str, Any] | None) -> None:
    """Parse `content` as `fmt`, then check it against `schema`; ContentError lists every violation."""
    fmt = check_format(fmt)
    document = parse(content, fmt)
    if schema is None:
        return
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    try:
        found = sorted(validator.iter_errors(document), key=lambda e: (_path_key(e.absolute_path), e.message))
    except referencing.exceptions.Unresolvable as exc:
        raise Invalid(
            f"schema cannot be used: unresolvable reference {exc.ref!r} (remote documents are not fetched)"
        ) from None
    if not found:
        return
    errors = [{"path": json_path(e.absolute_path), "message": e.message} for e in found]
    listed = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:_LISTED_ERRORS])
    if len(errors) > _LISTED_ERRORS:
        listed += f"; and {len(errors) - _LISTED_ERRORS} more (all in details.errors)"
    noun = "error" if len(errors) == 1 else "errors"
    raise ContentError(
        f"content does not match the schema ({len(errors)} {noun}): {listed}",
        path=errors[0]["path"],
        details={"format": fmt, "path": errors[0]["path"], "errors": errors},
    )
