"""Rendering a ConfluxConfig template: Jinja2 in a sandbox, plus the seed's Go-template lookups.

`{{ .Secrets.database_password }}` and `{{ .Values.pool.size }}` (the Go-template subset the seed
shows) are translated to Jinja (`{{ Secrets.database_password }}`) before rendering; any other Go
construct is an error that says what is supported. The environment is Jinja2's
`SandboxedEnvironment` with `StrictUndefined`: reaching Python internals (`''.__class__`) is a sandbox
violation, an unknown name or key is an error, and output size, string repetition and `range` are
bounded so a template cannot exhaust the server.

Secret values must never leave this module except inside the rendered content itself: `mask` replaces
them in any text (error messages, diffs), and `render(..., masked=True)` renders the same template with
every secret shown as `MASK`, for previews. Errors carry the template-relative line; the caller adds
the file's offset.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MASK = "******"
MAX_OUTPUT_CHARS = 1024 * 1024
MAX_RANGE_TOTAL = 100_000
TEMPLATE_NAME = "<template>"

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_GO_LOOKUP = re.compile(r"(^|[\s(,|\[=!<>+\-*/%~]|-)\.(Secrets|Values)\b")
_GO_OTHER = re.compile(r"(?:^|[\s(,|])\.([A-Za-z_]\w*)")


class RenderError(Exception):
    """A template that cannot be rendered; `line` is 1-based within the template (None if unknown)."""

    def __init__(self, message: str, line: int | None = None, *, sandbox: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.sandbox = sandbox


class Lookup:
    """A read-only namespace (`Secrets`, `Values`) whose missing keys give a clear error."""

    __slots__ = ("_data", "_label")

    def __init__(self, label: str, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_data", dict(data))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._data))

    def __repr__(self) -> str:
        return f"<{self._label}>"


class _Missing(StrictUndefined):
    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if isinstance(obj, Lookup):
            return f"{obj._label} has no key {self._undefined_name!r}"
        return str(super()._undefined_message)


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int) and abs(right) > 1000:
                raise SecurityError("exponent larger than 1000 refused")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            repeats = isinstance(seq, str | list | tuple) and isinstance(count, int)
            if repeats and len(seq) * count > MAX_OUTPUT_CHARS:
                raise SecurityError(f"repetition longer than {MAX_OUTPUT_CHARS} refused")
        return operator.mul(left, right)


def _budgeted_range() -> Any:
    used = [0]

    def bounded_range(*args: int) -> range:
        r = range(*args)
        used[0] += len(r)
        if used[0] > MAX_RANGE_TOTAL:
            raise SecurityError(f"range() over more than {MAX_RANGE_TOTAL} items in one template refused")
        return r

    return bounded_range


def _line_of(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def translate(source: str) -> str:
    """Go-template lookups to Jinja: `.Secrets.x` -> `Secrets.x`, `.Values.a.b` -> `Values.a.b`, inside
    `{{ ... }}` only. Other leading-dot lookups raise RenderError naming what is supported."""

    def expression(match: re.Match[str]) -> str:
        inner = _GO_LOOKUP.sub(lambda m: m.group(1) + m.group(2), match.group(1))
        other = _GO_OTHER.search(inner)
        if other is not None:
            raise RenderError(
                f"unsupported Go-template lookup .{other.group(1)}: only .Secrets.KEY and .Values.KEY "
                "(or Jinja2 syntax) are supported",
                _line_of(source, match.start()),
            )
        return "{{" + inner + "}}"

    return _EXPRESSION.sub(expression, source)


def _template_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TEMPLATE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(
    source: str,
    *,
    secrets: Mapping[str, str] | None,
    secrets_label: str,
    values: Mapping[str, Any],
    masked: bool = False,
) -> str:
    """The rendered template. `secrets` None: the document has no secretsRef (any `.Secrets` lookup
    fails with `secrets_label` in the message). `masked`: every secret renders as MASK."""
    shown = {k: MASK for k in secrets} if masked and secrets is not None else (secrets or {})
    secret_ns = Lookup(secrets_label, shown)
    values_ns = Lookup("spec.values", values)
    env = _Sandbox(undefined=_Missing, autoescape=False, keep_trailing_newline=True)
    env.globals["range"] = _budgeted_range()
    try:
        jinja_source = translate(source)
        template = env.from_string(jinja_source)
        template.filename = TEMPLATE_NAME
        output = template.render(Secrets=secret_ns, secrets=secret_ns, Values=values_ns, values=values_ns)
    except RenderError:
        raise
    except SecurityError as exc:
        raise RenderError(f"sandbox violation: {exc}", _template_line(exc), sandbox=True) from None
    except TemplateSyntaxError as exc:
        raise RenderError(f"template syntax error: {exc.message}", exc.lineno) from None
    except UndefinedError as exc:
        raise RenderError(f"undefined: {exc.message}", _template_line(exc)) from None
    except TemplateError as exc:
        raise RenderError(f"template error: {exc.message}", _template_line(exc)) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise RenderError(f"template error: {exc.__class__.__name__}: {exc}", _template_line(exc)) from None
    if len(output) > MAX_OUTPUT_CHARS:
        raise RenderError(f"rendered content is longer than {MAX_OUTPUT_CHARS} characters")
    return output


def mask(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every (non-empty) secret value replaced by MASK, longest first."""
    for value in sorted({v for v in secret_values if v}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
