"""Bounds on the structure of documents people send: nesting depth, YAML aliases and value counts.

Byte limits keep a document small, not cheap: 200 KB of `[` made ijson's C backend grow without
bound (its cost is quadratic in the depth), and a 279-byte YAML document whose aliases nest
(`b: [*a, *a, ...]`, `c: [*b, *b, ...]`) expands to millions of values in whatever walks it next
(a schema validation, `json.dumps`). Every parser of user content (Terraform and Pulumi states,
Conflux json/yaml/toml, compose and GitOps YAML) passes through this module first:

- `JsonDepthGuard` counts `[`/`{` depth outside strings before the bytes reach a JSON parser, in
  C-speed passes over each chunk (escape pairs out with `bytes.replace`, brackets and quotes kept by
  `bytes.translate`, strings dropped by splitting on quotes, depth from removing `[]` pairs level by
  level), so an upload is refused at the first chunk that is too deep; about 5 ms per MB.
- `next_node`/`single_node` compose YAML from the (libyaml) parser's events with an explicit stack,
  counting depth and values as they arrive, aliases counted as the values they expand to: an alias
  bomb is refused before anything is constructed, with the line of the alias that went over.
- `check_depth` walks an already parsed value (TOML, whose parser has no depth limit of its own).

The limits are one value per process (`configure`, called by `create_app` from the settings), read
wherever content is parsed: they protect the process, and threading them through every call path of
five domains (routes, background loops, the CLI) would add a parameter to dozens of signatures for a
value that never differs between callers. Pure functions: no I/O, no database, no settings import.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import yaml

from xcloudflow.errors import Invalid

# Real documents are shallow: a Terraform state's attributes start 6 levels down (state, resources,
# resource, instances, instance, attributes) and the deepest provider schemas seen (WAFv2 rule
# statements, CRD schemas in kubernetes_manifest) reach 30 to 40; GitLab caps CI YAML at 100 too.
DEFAULT_MAX_DEPTH = 100
DEFAULT_YAML_MAX_NODES = 250_000
DEFAULT_YAML_MAX_ALIAS_NODES = 10_000
DEFAULT_TEMPLATE_MAX_OUTPUT_CHARS = 1024 * 1024
DEFAULT_TEMPLATE_MAX_ITERATIONS = 1_000_000
DEFAULT_TEMPLATE_TIMEOUT_SECONDS = 2.0
SAFE_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ContentLimits:
    max_depth: int = DEFAULT_MAX_DEPTH  # XCF_CONTENT_MAX_DEPTH
    yaml_max_nodes: int = DEFAULT_YAML_MAX_NODES  # XCF_YAML_MAX_NODES
    yaml_max_alias_nodes: int = DEFAULT_YAML_MAX_ALIAS_NODES  # XCF_YAML_MAX_ALIAS_NODES
    # GitOps templates (gitops/sandbox.py): XCF_TEMPLATE_MAX_OUTPUT_CHARS, _MAX_ITERATIONS, _TIMEOUT_SECONDS
    template_max_output_chars: int = DEFAULT_TEMPLATE_MAX_OUTPUT_CHARS
    template_max_iterations: int = DEFAULT_TEMPLATE_MAX_ITERATIONS
    template_timeout_seconds: float = DEFAULT_TEMPLATE_TIMEOUT_SECONDS

    @classmethod
    def of(cls, settings: Any) -> ContentLimits:
        """The limits named by a `Settings` (its fields of the same names, `content_` dropped)."""
        return cls(
            max_depth=settings.content_max_depth,
            yaml_max_nodes=settings.yaml_max_nodes,
            yaml_max_alias_nodes=settings.yaml_max_alias_nodes,
            template_max_output_chars=settings.template_max_output_chars,
            template_max_iterations=settings.template_max_iterations,
            template_timeout_seconds=settings.template_timeout_seconds,
        )


_limits = ContentLimits()


def configure(value: ContentLimits) -> None:
    """Set the limits of this process (the server does it once, from its settings)."""
    global _limits
    _limits = value


def limits() -> ContentLimits:
    return _limits


class TooDeep(Invalid):
    """A document nested deeper than the limit; `problem` says what (no place), `line` (1-based) and
    `offset` (bytes) say where when known."""

    code = "too_deep"

    def __init__(self, what: str, max_depth: int, *, line: int | None, offset: int | None) -> None:
        where = f" (line {line})" if line is not None else ""
        hint = "; the limit is XCF_CONTENT_MAX_DEPTH"
        super().__init__(
            f"{what} is nested more than {max_depth} levels deep{where}{hint}",
            details={"line": line, "offset": offset, "rule": "max_depth", "limit": max_depth},
        )
        self.problem = f"{what} is nested more than {max_depth} levels deep{hint}"
        self.line = line
        self.offset = offset


def too_deep(
    what: str, *, line: int | None = None, offset: int | None = None, max_depth: int | None = None
) -> TooDeep:
    return TooDeep(what, limits().max_depth if max_depth is None else max_depth, line=line, offset=offset)


# ---------------------------------------------------------------------------------------------- json

_LEVELS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 once read as signed bytes
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_SLICE = 256 * 1024
_PASSES = 3  # pair-removal passes before the running depth is summed (they remove most brackets)


class JsonDepthGuard:
    """Feed a JSON text's bytes in order; `feed` raises TooDeep at the first chunk nested deeper than
    `max_depth`. Cost: a few C passes over each chunk, memory: one chunk. Unbalanced input (a `]` at
    depth 0) stops the counting: the JSON parser that comes next fails there without going deeper."""

    def __init__(self, max_depth: int | None = None, *, what: str = "the document") -> None:
        self.max_depth = limits().max_depth if max_depth is None else max_depth
        self.what = what
        self.depth = 0
        self.in_string = False
        self.broken = False
        self._carry = b""  # a backslash that ended a chunk, escaping the next one's first byte
        self._offset = 0  # bytes before the current chunk
        self._line = 1  # line of the current chunk's first byte

    def feed(self, chunk: bytes) -> None:
        for start in range(0, len(chunk), _SLICE):
            self._feed(chunk[start : start + _SLICE] if len(chunk) > _SLICE else chunk)

    def _feed(self, chunk: bytes) -> None:
        if self.broken or not chunk:
            return
        buf = self._carry + chunk if self._carry else chunk
        state = (self.depth, self.in_string, len(self._carry))
        # A run of backslashes at the end may escape the next chunk's first byte: keep it for then.
        body = buf.rstrip(b"\\")
        self._carry = b"\\" if (len(buf) - len(body)) % 2 else b""  # complete pairs need no carrying
        if b"\\" in body:
            # Escape pairs out (`\\` first, so `\\"` stays a closing quote): every quote left delimits.
            body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
        # Only brackets and quotes matter; `""` is a string without brackets (or a gap between two).
        marks = body.translate(_LEVELS, _NOT_STRUCTURE).replace(b'""', b"")
        parts = marks.split(b'"')
        outside = b"".join(parts[1::2] if self.in_string else parts[0::2])
        if (len(parts) - 1) % 2:
            self.in_string = not self.in_string
        if outside and not self._within(outside):
            at = self._locate(buf, *state)
            line = self._line + buf.count(b"\n", 0, at)
            raise too_deep(self.what, line=line, offset=self._offset + at, max_depth=self.max_depth)
        self._advance(chunk)

    def _within(self, levels: bytes) -> bool:
        """Update the depth by a run of +1/-1 bytes; False when it goes deeper than the limit."""
        # Innermost pairs out, one level per pass: most brackets of a real document go in a few passes,
        # and the running depth of what is left, plus the passes, bounds the depth of the whole run
        # (removing a matched pair changes no other prefix sum).
        reduced, passes = levels, 0
        while passes < _PASSES and b"\x01\xff" in reduced:
            reduced, passes = reduced.replace(b"\x01\xff", b""), passes + 1
        running = list(accumulate(memoryview(reduced).cast("b"), initial=self.depth))
        low, high = min(running), max(running)
        if low >= 0 and high + passes > self.max_depth:  # the bound may be loose: count exactly
            exact = list(accumulate(memoryview(levels).cast("b"), initial=self.depth))
            if max(exact) > self.max_depth:
                return False
        self._settle(running[-1], low < 0)
        return True

    def _settle(self, depth: int, unbalanced: bool) -> None:
        # A `]` at depth 0 is a syntax error the parser stops at: nothing after it is parsed.
        self.depth = max(depth, 0)
        self.broken = unbalanced

    def _advance(self, chunk: bytes) -> None:
        self._offset += len(chunk)
        self._line += chunk.count(b"\n")

    def _locate(self, buf: bytes, depth: int, in_string: bool, carried: int) -> int:
        """The offset in the current chunk of the bracket that went over (only after a refusal)."""
        escaped = False
        for i, byte in enumerate(buf):
            if in_string:
                if escaped:
                    escaped = False
                elif byte == 0x5C:
                    escaped = True
                elif byte == 0x22:
                    in_string = False
            elif byte == 0x22:
                in_string = True
            elif byte in b"[{":
                depth += 1
                if depth > self.max_depth:
                    return max(i - carried, 0)
            elif byte in b"]}":
                depth -= 1
        return 0


def check_json_depth(data: bytes | str, max_depth: int | None = None, *, what: str = "the document") -> None:
    """TooDeep when the JSON text `data` nests deeper than the limit (before it is parsed)."""
    guard = JsonDepthGuard(max_depth, what=what)
    guard.feed(data.encode() if isinstance(data, str) else data)


# ----------------------------------------------------------------------------------- parsed values


def check_depth(value: Any, max_depth: int | None = None, *, what: str = "the document") -> None:
    """TooDeep when a parsed value (dicts and lists) nests deeper than the limit; iterative."""
    limit = limits().max_depth if max_depth is None else max_depth
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        if depth > limit:
            raise too_deep(what, max_depth=limit)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))


# ---------------------------------------------------------------------------------------------- yaml


class YamlBoundError(yaml.MarkedYAMLError):
    """A YAML document beyond a limit (depth, values, alias expansion); a MarkedYAMLError, so every
    caller that reports YAML errors with their line reports this one the same way."""

    def __init__(self, problem: str, mark: Any, rule: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.rule = rule


class _Composer:
    """PyYAML's Composer rewritten with an explicit stack and counters; reads `loader`'s events."""

    def __init__(self, loader: Any, bounds: ContentLimits) -> None:
        self.loader = loader
        self.bounds = bounds
        self.anchors: dict[str, yaml.Node] = {}
        self.size: dict[int, int] = {}  # id(node) -> values it expands to
        self.height: dict[int, int] = {}  # id(node) -> levels it spans
        self.open: set[int] = set()  # collections not closed yet (an alias to one is recursive)
        self.nodes = 0
        self.alias_nodes = 0

    def _count(self, node: yaml.Node, size: int, height: int, depth: int, mark: Any) -> None:
        self.nodes += size
        if self.nodes > self.bounds.yaml_max_nodes:
            raise YamlBoundError(
                f"the document has more than {self.bounds.yaml_max_nodes} values (aliases expanded); "
                "the limit is XCF_YAML_MAX_NODES",
                mark,
                "yaml_max_nodes",
            )
        if depth + height - 1 > self.bounds.max_depth:
            raise YamlBoundError(
                f"the document is nested more than {self.bounds.max_depth} levels deep; "
                "the limit is XCF_CONTENT_MAX_DEPTH",
                mark,
                "max_depth",
            )

    def _alias(self, event: Any, depth: int) -> yaml.Node:
        anchor = event.anchor
        if anchor not in self.anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {anchor!r}", event.start_mark
            )
        node = self.anchors[anchor]
        if id(node) in self.open:
            raise YamlBoundError(
                f"alias *{anchor} refers to a collection that contains it (a recursive document)",
                event.start_mark,
                "recursive_alias",
            )
        size = self.size[id(node)]
        self.alias_nodes += size
        if self.alias_nodes > self.bounds.yaml_max_alias_nodes:
            raise YamlBoundError(
                f"aliases expand to more than {self.bounds.yaml_max_alias_nodes} values (at alias *{anchor}); "
                "the limit is XCF_YAML_MAX_ALIAS_NODES",
                event.start_mark,
                "yaml_max_alias_nodes",
            )
        self._count(node, size, self.height[id(node)], depth, event.start_mark)
        return node

    def document(self) -> yaml.Node:
        try:
            return self._document()
        except yaml.scanner.ScannerError as exc:
            if "maximum nesting depth" not in str(exc.problem):
                raise
            # libyaml's own limit (1000), met first when its scanner reads ahead: the same error as ours.
            raise YamlBoundError(
                f"the document is nested more than {self.bounds.max_depth} levels deep; "
                "the limit is XCF_CONTENT_MAX_DEPTH",
                exc.problem_mark,
                "max_depth",
            ) from None

    def _document(self) -> yaml.Node:
        loader = self.loader
        loader.get_event()  # DocumentStart
        # Each frame: the collection being filled, and the key waiting for its value (mappings).
        stack: list[tuple[yaml.Node, list[yaml.Node]]] = []
        root: yaml.Node | None = None
        while root is None:
            event = loader.get_event()
            depth = len(stack) + 1
            node: yaml.Node | None
            if isinstance(event, yaml.AliasEvent):
                node = self._alias(event, depth)
            elif isinstance(event, yaml.ScalarEvent | yaml.SequenceStartEvent | yaml.MappingStartEvent):
                node = self._start(event, depth)
                if isinstance(node, yaml.CollectionNode):
                    stack.append((node, []))
                    continue
            else:  # SequenceEnd / MappingEnd
                node, _pending = stack.pop()
                node.end_mark = event.end_mark
                self.open.discard(id(node))
                children = (
                    [c for pair in node.value for c in pair]
                    if isinstance(node, yaml.MappingNode)
                    else node.value
                )
                self.size[id(node)] = 1 + sum(self.size[id(c)] for c in children)
                self.height[id(node)] = 1 + max((self.height[id(c)] for c in children), default=0)
            if not stack:
                root = node
                break
            parent, pending = stack[-1]
            if isinstance(parent, yaml.MappingNode):
                if pending:
                    parent.value.append((pending.pop(), node))
                else:
                    pending.append(node)
            else:
                parent.value.append(node)
        loader.get_event()  # DocumentEnd
        self.anchors = {}
        return root

    def _start(self, event: Any, depth: int) -> yaml.Node:
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise yaml.composer.ComposerError(
                f"found duplicate anchor {anchor!r}; first occurrence",
                self.anchors[anchor].start_mark,
                "second occurrence",
                event.start_mark,
            )
        tag = event.tag
        node: yaml.Node
        if isinstance(event, yaml.ScalarEvent):
            if tag is None or tag == "!":
                tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            start: Any = event.start_mark  # libyaml's Mark class, not PyYAML's (same fields)
            end: Any = event.end_mark
            node = yaml.ScalarNode(tag, event.value, start, end, style=event.style)
            self.size[id(node)] = 1
            self.height[id(node)] = 1
            self._count(node, 1, 1, depth, event.start_mark)
        else:
            kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
            if tag is None or tag == "!":
                tag = self.loader.resolve(kind, None, event.implicit)
            node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
            self.open.add(id(node))
            self._count(node, 1, 1, depth, event.start_mark)
        if anchor is not None:
            self.anchors[anchor] = node
        return node


def next_node(loader: Any, bounds: ContentLimits | None = None) -> yaml.Node | None:
    """The node graph of the next document of `loader` (a PyYAML loader instance), composed within
    the limits; None at the end of the stream. Construct it with `loader.construct_document(node)`."""
    if loader.check_event(yaml.StreamStartEvent):
        loader.get_event()
    if loader.check_event(yaml.StreamEndEvent):
        return None
    return _Composer(loader, bounds or limits()).document()


def single_node(loader: Any, bounds: ContentLimits | None = None) -> yaml.Node | None:
    """Like PyYAML's `get_single_node`: the only document's node graph (None for an empty stream)."""
    node = next_node(loader, bounds)
    if not loader.check_event(yaml.StreamEndEvent):
        event = loader.get_event()
        raise yaml.composer.ComposerError(
            "expected a single document in the stream",
            node.start_mark if node is not None else None,
            "but found another document",
            event.start_mark,
        )
    return node


def load(text: str, *, loader_class: type[Any] = SAFE_LOADER, bounds: ContentLimits | None = None) -> Any:
    """`yaml.load(text, Loader=loader_class)` within the limits (a single document)."""
    loader = loader_class(text)
    try:
        node = single_node(loader, bounds)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def iter_documents(
    text: str, *, loader_class: type[Any] = SAFE_LOADER, bounds: ContentLimits | None = None
) -> Iterator[tuple[yaml.Node, Any]]:
    """(node, value) of each document of a stream, within the limits (each document on its own)."""
    loader = loader_class(text)
    try:
        while (node := next_node(loader, bounds)) is not None:
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()
