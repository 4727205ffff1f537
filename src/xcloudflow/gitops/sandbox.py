"""A Jinja2 sandbox whose memory and time a template cannot exhaust.

Jinja2's `SandboxedEnvironment` stops access to Python internals, not work: `'a'.ljust(1500000000)`,
`|center`, a macro that concatenates its output a thousand times, or two nested loops over long
strings (10^12 iterations) all ran in the server. Here every way a template makes something large or
runs long is bounded by `bounded.limits()`:

- Sizes: every string, list or number a template makes is checked BEFORE it is made where the size
  is known from the arguments (`ljust`/`rjust`/`center`/`zfill`/`expandtabs` widths, `replace`,
  `join`, `*`, `+`, `~`, `%` and `format` widths, `indent`, `wordwrap`, `batch`, `slice`, the text of
  a list or dict printed or passed to `string`/`tojson`/`pprint`), and after it is made for the
  rest (each such step grows by a small factor at most, so the largest temporary stays a few times
  the limit). Captured output (macros, `{% set %}` blocks, `{% filter %}`) is joined by a counting
  `concat`; the final output is streamed and counted, never built whole first.
- Work: loop iterations (recursive loops included), calls and filters count against one budget,
  and the time limit is checked at each of them and at each piece of output. The limit counts the
  rendering thread's CPU time (time.thread_time): a template that computes is stopped, and a busy
  machine or other threads of the server never fail an honest one.
- Mutation: lists and dicts are immutable (`ImmutableSandboxedEnvironment`): `l.extend(l)` in a loop
  would double a list without making anything the checks above see.

It must never run a template without a `Budget`, and never hand a template an unbounded generator
(`lipsum` is removed; `range` is budgeted).
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.visitor import NodeTransformer

from xcloudflow.bounded import ContentLimits

MAX_INT_BITS = 64 * 1024  # far beyond any config value; `x * x` repeated would grow without end
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_SPEC = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?")
_WIDTH_METHODS = frozenset(["ljust", "rjust", "center", "zfill"])


class Budget:
    """What one render may still spend: characters per value, steps, and time."""

    def __init__(self, bounds: ContentLimits) -> None:
        self.max_chars = bounds.template_max_output_chars
        self.max_steps = bounds.template_max_iterations
        self.timeout = bounds.template_timeout_seconds
        self.deadline = time.thread_time() + bounds.template_timeout_seconds
        self.steps = 0
        self.range_items = 0

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.max_steps:
            raise SecurityError(
                f"more than {self.max_steps} loop iterations and calls in one template refused "
                "(XCF_TEMPLATE_MAX_ITERATIONS)"
            )
        if time.thread_time() > self.deadline:
            raise SecurityError(
                f"rendering took longer than {self.timeout:g} s (XCF_TEMPLATE_TIMEOUT_SECONDS)"
            )

    def refuse(self, what: str) -> SecurityError:
        return SecurityError(f"{what} longer than {self.max_chars} refused (XCF_TEMPLATE_MAX_OUTPUT_CHARS)")

    def size(self, length: int, what: str) -> None:
        if length > self.max_chars:
            raise self.refuse(what)

    def text_size(self, value: Any, what: str) -> None:
        """The length of `str(value)` (for containers: a lower bound, walked only up to the limit)."""
        total = 0
        stack = [value]
        while stack:
            current = stack.pop()
            if isinstance(current, str | bytes):
                total += len(current) + 2
            elif isinstance(current, dict):
                total += 2 + 4 * len(current)
                if total <= self.max_chars:
                    stack.extend(current.keys())
                    stack.extend(current.values())
            elif isinstance(current, list | tuple | set | frozenset):
                total += 2 + 2 * len(current)
                if total <= self.max_chars:
                    stack.extend(current)
            else:
                total += 1
            if total > self.max_chars:
                raise self.refuse(what)

    def result(self, value: Any, what: str) -> Any:
        """Refuse a value made too large (after the fact: for steps that grow by a small factor)."""
        if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
            self.size(len(value), what)
        elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"{what}: an integer of more than {MAX_INT_BITS} bits refused")
        return value

    def printf(self, template: str, args: Any) -> None:
        for match in _PRINTF.finditer(template):
            for number in match.groups():
                if number == "*":
                    raise SecurityError("'*' widths in % formatting refused (write the width in the format)")
                if number and int(number) > self.max_chars:
                    raise self.refuse("a % format width")
        self.text_size(args, "% formatting of a value")

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.step()
            yield item


def _bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


class _BoundedFormatter(SandboxedFormatter):
    """`str.format` in templates: Jinja's sandboxed field lookup, with bounded widths and values."""

    def __init__(self, env: BoundedSandbox) -> None:
        super().__init__(env)
        self.budget = env.budget

    def format_field(self, value: Any, format_spec: str) -> Any:
        match = _SPEC.match(format_spec)
        for number in match.groups() if match else ():
            if number and int(number) > self.budget.max_chars:
                raise self.budget.refuse("a format width")
        self.budget.text_size(value, "a formatted value")
        return super().format_field(value, format_spec)


class _Bounding(NodeTransformer):
    """Every `for` iterates through the budget; every `~` concatenation is a counted call."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _env_call("xcf_iterate", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _env_call("xcf_concat", list(node.nodes), node.lineno)


def _env_call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    call.set_lineno(lineno)
    return call


_Check = Callable[[Budget, tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]


def _width_filter(position: int, what: str) -> _Check:
    def check(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        width = args[position] if len(args) > position else kwargs.get("width", 0)
        if isinstance(width, int):
            budget.size(width, what)

    return check


def _check_indent(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = str(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 4)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    budget.size(len(text) + (text.count("\n") + 1) * per_line, "indented text")


def _check_wordwrap(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = str(args[0]) if args else ""
    width = args[1] if len(args) > 1 else kwargs.get("width", 79)
    wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring") or "\n"
    lines = len(text) // max(int(width) if isinstance(width, int) else 1, 1) + text.count("\n") + 1
    budget.size(len(text) + lines * len(str(wrap)), "wrapped text")


def _check_replace(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 3:
        count = args[3] if len(args) > 3 else kwargs.get("count")
        _replace_size(budget, str(args[0]), str(args[1]), str(args[2]), count)


def _replace_size(budget: Budget, text: str, old: str, new: str, count: Any) -> None:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    budget.size(len(text) + found * (len(new) - len(old)), "replaced text")


def _check_count(position: int, what: str) -> _Check:
    def check(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        count = args[position] if len(args) > position else 0
        if isinstance(count, int):
            budget.size(count, what)

    return check


def _check_text_of(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args:
        budget.text_size(args[0], "the text of a value")


def _check_format(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args:
        budget.printf(str(args[0]), (args[1:], kwargs))


def _check_join(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Materialize what is joined (a generator too) and count it before the join makes it one text."""
    if not args:
        return args
    items = list(budget.iterate(args[0]))
    separator = args[1] if len(args) > 1 else kwargs.get("d", "")
    budget.text_size(items, "joined text")
    budget.size(len(str(separator)) * max(len(items) - 1, 0), "joined text")
    return (items, *args[1:])


def _check_sum(budget: Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    start = args[2] if len(args) > 2 else kwargs.get("start", 0)
    if not isinstance(start, int | float):  # adding lists copies them again and again (quadratic)
        raise SecurityError("|sum adds numbers only in templates")


# Filters whose output size the arguments tell; every filter's result is checked afterwards too.
_FILTER_CHECKS: dict[str, _Check] = {
    "center": _width_filter(1, "centered text"),
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "format": _check_format,
    "join": _check_join,
    "sum": _check_sum,
    "batch": _check_count(1, "a batch"),
    "slice": _check_count(1, "a slice count"),
    "string": _check_text_of,
    "pprint": _check_text_of,
    "tojson": _check_text_of,
}


class BoundedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, bounds: ContentLimits, **options: Any) -> None:
        self.budget = Budget(bounds)
        super().__init__(finalize=self._finalize, **options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._range
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}

    # ---- parse: loops and `~` go through the budget
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        bounded_tree: nodes.Template = _Bounding().visit(tree)
        return bounded_tree

    def xcf_iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        return self.budget.iterate(iterable)

    def xcf_concat(self, *parts: Any) -> str:
        for part in parts:
            self.budget.text_size(part, "a concatenation")
        return self.concat([str(p) for p in parts])

    # ---- output
    def concat(self, parts: Iterable[str]) -> str:
        """Captured output (macros, blocks, `{% set %}` blocks): counted while joined."""
        pieces = list(parts)
        self.budget.size(sum(len(p) for p in pieces), "captured output")
        self.budget.step()
        return "".join(pieces)

    def _finalize(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.budget.text_size(value, "the text of a value")
        return value

    def generate(self, template: Any, context: dict[str, Any]) -> str:
        """Render `template` streaming its output and counting it; refused past the limit."""
        out: list[str] = []
        total = 0
        for piece in template.generate(**context):
            total += len(piece)
            if total > self.budget.max_chars:
                raise SecurityError(
                    f"rendered content is longer than {self.budget.max_chars} characters "
                    "(XCF_TEMPLATE_MAX_OUTPUT_CHARS)"
                )
            self.budget.step(0)
            out.append(piece)
        return "".join(out)

    # ---- calls, operators, filters
    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = __self.budget
        budget.step()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (budget.iterate(args[0]), *args[1:])
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes):
            args = __self._check_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return budget.result(super().call(__context, __obj, *args, **kwargs), "a call's result")

    def _check_method(
        self, owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        budget = self.budget
        if name in _WIDTH_METHODS and args and isinstance(args[0], int):
            budget.size(args[0], f"{name}()")
        elif name == "expandtabs":
            tab = args[0] if args else kwargs.get("tabsize", 8)
            budget.size(len(owner) * (tab if isinstance(tab, int) else 1), "expandtabs()")
        elif name == "replace" and len(args) >= 2:
            _replace_size(budget, str(owner), str(args[0]), str(args[1]), args[2] if len(args) > 2 else None)
        elif name == "join" and args:
            items = list(budget.iterate(args[0]))
            budget.text_size(items, "join()")
            budget.size(len(owner) * max(len(items) - 1, 0), "join()")
            return (items, *args[1:])
        return args

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        original = super().wrap_str_format(value)
        if original is None:
            return None
        owner: str = value.__self__
        formatter = _BoundedFormatter(self)
        is_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if not is_map:
                return type(owner)(formatter.vformat(owner, args, kwargs))
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one mapping argument")
            return type(owner)(formatter.vformat(owner, (), args[0]))

        return functools.update_wrapper(bounded_format, value)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        budget = self.budget
        budget.step()
        if operator_name == "**":
            huge = isinstance(right, int) and (right > 1000 or max(_bits(left), 1) * right > MAX_INT_BITS)
            if isinstance(left, int) and huge:
                raise SecurityError("exponent too large refused")
            return budget.result(operator.pow(left, right), "a power")
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    budget.size(len(seq) * count, "repetition")
            if _bits(left) + _bits(right) > MAX_INT_BITS:
                raise SecurityError(f"a product of more than {MAX_INT_BITS} bits refused")
            return budget.result(operator.mul(left, right), "a product")
        if operator_name == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                budget.size(len(left) + len(right), "a sum")
            return budget.result(operator.add(left, right), "a sum")
        if isinstance(left, str):  # "%": printf-style formatting
            budget.printf(left, right)
        return budget.result(operator.mod(left, right), "a % result")

    def _range(self, *args: int) -> range:
        items = range(*args)
        self.budget.range_items += len(items)
        if self.budget.range_items > self.budget.max_steps:
            raise SecurityError(
                f"range() over more than {self.budget.max_steps} items in one template refused "
                "(XCF_TEMPLATE_MAX_ITERATIONS)"
            )
        return items

    def _bounded_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        check = _FILTER_CHECKS.get(name)
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

        @functools.wraps(func)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.budget.step()
            if check is not None:
                changed = check(self.budget, args[skip:], kwargs)
                if changed is not None:
                    args = (*args[:skip], *changed)
            return self.budget.result(func(*args, **kwargs), f"the result of |{name}")

        return bounded
