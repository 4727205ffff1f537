"""Rendering a ConfluxConfig template: Jinja2 in a sandbox, plus the seed's Go-template lookups.

`{{ .Secrets.database_password }}` and `{{ .Values.pool.size }}` (the Go-template subset the seed
shows) are translated to Jinja (`{{ Secrets.database_password }}`) before rendering; any other Go
construct is an error that says what is supported. The environment is `sandbox.BoundedSandbox` (Jinja2's
immutable sandbox) with `StrictUndefined`: reaching Python internals (`''.__class__`) is a sandbox
violation, an unknown name or key is an error, and the size of everything a template makes, its loop
iterations and its time are bounded (`bounded.limits()`, XCF_TEMPLATE_*) while it renders, so a
template cannot exhaust the server.

Secret values must never leave this module except inside the rendered content itself: `mask` replaces
them in any text (error messages, diffs), and `render(..., masked=True)` renders the same template with
every secret shown as `MASK`, for previews. Errors carry the template-relative line; the caller adds
the file's offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from xcloudflow import bounded
from xcloudflow.gitops.sandbox import BoundedSandbox

MASK = "******"
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
    bounds: bounded.ContentLimits | None = None,
) -> str:
    """The rendered template. `secrets` None: the document has no secretsRef (any `.Secrets` lookup
    fails with `secrets_label` in the message). `masked`: every secret renders as MASK. `bounds`:
    the process's limits by default."""
    shown = {k: MASK for k in secrets} if masked and secrets is not None else (secrets or {})
    secret_ns = Lookup(secrets_label, shown)
    values_ns = Lookup("spec.values", values)
    env = BoundedSandbox(
        bounds or bounded.limits(), undefined=_Missing, autoescape=False, keep_trailing_newline=True
    )
    try:
        jinja_source = translate(source)
        template = env.from_string(jinja_source)
        template.filename = TEMPLATE_NAME
        return env.generate(
            template, {"Secrets": secret_ns, "secrets": secret_ns, "Values": values_ns, "values": values_ns}
        )
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
    except RecursionError as exc:  # a macro or recursive loop calling itself without end
        raise RenderError(
            "template error: calls nested too deeply (recursion)", _template_line(exc)
        ) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise RenderError(f"template error: {exc.__class__.__name__}: {exc}", _template_line(exc)) from None


def mask(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every (non-empty) secret value replaced by MASK, longest first."""
    for value in sorted({v for v in secret_values if v}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
