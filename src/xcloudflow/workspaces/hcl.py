"""Pure HCL helpers for managed resources: check that a text is one addressable block, add
`depends_on` references to it by editing the text, and assemble main.tf in dependency order.

python-hcl2 parses (its Lark tree carries character positions); nothing is ever re-rendered from the
tree, so the user's formatting and comments survive generation. This module knows nothing about the
database or the API: problems are `HclProblem` (message + line), which the service turns into
`Invalid` naming the resource.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections import defaultdict
from dataclasses import dataclass

import hcl2
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

ADDRESS_PATTERN = re.compile(
    r"^(data\.)?[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_-]*$|^module\.[A-Za-z_][A-Za-z0-9_-]*$"
)
# Block type -> number of labels; these are the blocks whose address Terraform plans and that
# accept a `depends_on` meta-argument.
BLOCK_LABELS = {"resource": 2, "data": 2, "module": 1}


class HclProblem(ValueError):
    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Block:
    kind: str  # resource | data | module
    labels: tuple[str, ...]
    address: str
    line: int
    open_brace: int  # offset of "{" in the text
    close_brace: int  # offset of "}"
    depends_on: DependsOn | None


@dataclass(frozen=True)
class DependsOn:
    items: tuple[str, ...]  # the references as written (whitespace removed)
    open_bracket: int
    close_bracket: int
    last_item_end: int | None  # offset just after the last reference (None: empty list)


def address_of(kind: str, labels: tuple[str, ...]) -> str:
    if kind == "resource":
        return f"{labels[0]}.{labels[1]}"
    if kind == "data":
        return f"data.{labels[0]}.{labels[1]}"
    return f"module.{labels[0]}"


def is_valid_address(address: str) -> bool:
    if not ADDRESS_PATTERN.match(address):
        return False
    # `data.x` matches TYPE.NAME, but Terraform reads it as an incomplete data source address.
    return not (address.startswith("data.") and address.count(".") == 1)


def _syntax_problem(exc: Exception) -> HclProblem:
    if isinstance(exc, UnexpectedToken):
        what = "end of input" if exc.token.type == "$END" else repr(_short(str(exc.token.value)))
        return HclProblem(f"syntax error at column {exc.column}: unexpected {what}", line=exc.line)
    if isinstance(exc, UnexpectedCharacters):
        return HclProblem(f"syntax error at column {exc.column}: unexpected character", line=exc.line)
    if isinstance(exc, UnexpectedEOF):
        return HclProblem("syntax error: unexpected end of input")
    if isinstance(exc, UnexpectedInput):
        return HclProblem(f"syntax error: {str(exc).splitlines()[0]}", line=exc.line)
    first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return HclProblem(f"cannot parse: {first}")


def _short(text: str, limit: int = 30) -> str:
    text = text.strip() or text
    return text if len(text) <= limit else text[:limit] + "..."


def _tokens(tree: Tree[Token]) -> list[Token]:
    return [t for t in tree.scan_values(lambda v: isinstance(v, Token))]


def _label(node: Tree[Token] | Token) -> str | None:
    """A block label: a quoted string without interpolation, or a bare identifier."""
    if isinstance(node, Token):
        return None
    if node.data == "identifier":
        return str(_tokens(node)[0].value)
    if node.data != "string":
        return None
    text = ""
    for part in node.children:
        if isinstance(part, Token):
            continue  # the quotes
        for piece in part.children:
            if not isinstance(piece, Token) or piece.type != "STRING_CHARS":
                return None
            text += str(piece.value)
    return text


def _line(node: Tree[Token]) -> int | None:
    return None if node.meta.empty else node.meta.line


def parse_block(text: str) -> Block:
    """The single top-level `resource`, `data` or `module` block of `text`, or HclProblem."""
    result = parse_result(text)
    if isinstance(result, HclProblem):
        raise result
    return result


@functools.lru_cache(maxsize=32)
def parse_result(text: str) -> Block | HclProblem:
    """`parse_block` returning the problem instead of raising it. Parsing is slow (about 100 KB/s),
    so recent results are kept: the API parses a body before it takes the write lock, and the
    service's checks inside the transaction then cost nothing."""
    try:
        return _parse_block(text)
    except HclProblem as exc:
        return exc


def _top_level(text: str) -> list[Tree[Token]]:
    """The top-level blocks and arguments of `text` (comments and blank lines left out); HclProblem
    when it does not parse."""
    try:
        tree = hcl2.parses_to_tree(text)
    except Exception as exc:  # lark's errors and any other failure of the parser
        raise _syntax_problem(exc) from exc
    body = tree.children[0] if tree.children else None
    if not isinstance(body, Tree):
        return []
    return [c for c in body.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _parse_block(text: str) -> Block:
    blocks: list[Tree[Token]] = []
    for child in _top_level(text):
        if child.data == "attribute":
            name = _tokens(child)[0].value
            raise HclProblem(
                f"top-level argument {name!r}: only one resource, data or module block is allowed",
                line=_line(child),
            )
        blocks.append(child)
    if not blocks:
        raise HclProblem("no block: expected one resource, data or module block")
    if len(blocks) > 1:
        lines = ", ".join(str(_line(b)) for b in blocks)
        raise HclProblem(f"{len(blocks)} blocks (at lines {lines}): expected exactly one")
    return _block(blocks[0])


PROVIDER_FILE_BLOCKS = {"provider": 1, "terraform": 0}


def check_providers(text: str) -> None:
    """Provider settings hold only `provider "name" {...}` and `terraform {...}` blocks (HclProblem)."""
    for child in _top_level(text):
        if child.data == "attribute":
            raise HclProblem(
                f"top-level argument {_tokens(child)[0].value!r}: only blocks", line=_line(child)
            )
        kind_node = child.children[0]
        kind = _label(kind_node) if isinstance(kind_node, Tree) else None
        labels = [c for c in child.children[1:] if not isinstance(c, Token) and c.data != "body"]
        if kind not in PROVIDER_FILE_BLOCKS:
            raise HclProblem(f"a {kind} block: only provider and terraform blocks", line=_line(child))
        if len(labels) != PROVIDER_FILE_BLOCKS[kind]:
            raise HclProblem(f"a {kind} block takes {PROVIDER_FILE_BLOCKS[kind]} label(s)", line=_line(child))


def _block(block: Tree[Token]) -> Block:
    line = _line(block) or 1
    kind_node = block.children[0]
    kind = _label(kind_node) if isinstance(kind_node, Tree) and kind_node.data == "identifier" else None
    open_brace = close_brace = None
    labels: list[str | None] = []
    body: Tree[Token] | None = None
    for child in block.children[1:]:
        if isinstance(child, Token):
            if child.type == "LBRACE":
                open_brace = child.start_pos
            elif child.type == "RBRACE":
                close_brace = child.start_pos
        elif child.data == "body":
            body = child
        elif open_brace is None:
            labels.append(_label(child))
    if kind not in BLOCK_LABELS:
        raise HclProblem(f"a {kind} block: expected a resource, data or module block", line=line)
    if len(labels) != BLOCK_LABELS[kind]:
        raise HclProblem(
            f"a {kind} block takes {BLOCK_LABELS[kind]} label(s), this one has {len(labels)}", line=line
        )
    if any(label is None for label in labels):
        raise HclProblem(f"the labels of a {kind} block must be plain strings", line=line)
    if open_brace is None or close_brace is None or body is None:
        raise HclProblem(f"the {kind} block has no body", line=line)
    plain = tuple(str(label) for label in labels)
    address = address_of(kind, plain)
    if not is_valid_address(address):
        raise HclProblem(f"{address!r} is not a valid address", line=line)
    return Block(
        kind=kind,
        labels=plain,
        address=address,
        line=line,
        open_brace=open_brace,
        close_brace=close_brace,
        depends_on=_depends_on(body),
    )


def _depends_on(body: Tree[Token]) -> DependsOn | None:
    found: DependsOn | None = None
    for attr in body.children:
        if not isinstance(attr, Tree) or attr.data != "attribute":
            continue
        if _tokens(attr)[0].value != "depends_on":
            continue
        if found is not None:
            raise HclProblem("depends_on is set twice", line=_line(attr))
        value = attr.children[-1]
        tup = value.children[0] if isinstance(value, Tree) and len(value.children) == 1 else None
        if not isinstance(tup, Tree) or tup.data != "tuple":
            raise HclProblem(
                "depends_on must be a list of references, like [terraform_data.a]", line=_line(attr)
            )
        items: list[str] = []
        last_end: int | None = None
        opening = closing = -1
        for part in tup.children:
            if isinstance(part, Token):
                if part.type == "LSQB":
                    opening = part.start_pos if part.start_pos is not None else -1
                elif part.type == "RSQB":
                    closing = part.start_pos if part.start_pos is not None else -1
                continue
            if part.data == "new_line_or_comment" or part.meta.empty:
                continue
            first, last = _tokens(part)[0], _tokens(part)[-1]
            if first.start_pos is None or last.end_pos is None:
                continue
            items.append("".join(str(t.value) for t in _tokens(part)))
            last_end = last.end_pos
        found = DependsOn(
            items=tuple(items), open_bracket=opening, close_bracket=closing, last_item_end=last_end
        )
    return found


def add_depends_on(text: str, references: list[str]) -> str:
    """`text` (one valid block) with `references` in its `depends_on`: a new line after the opening
    brace, or appended to the existing list (references already there are not repeated)."""
    block = parse_block(text)
    existing = set(block.depends_on.items) if block.depends_on else set()
    wanted = [r for r in dict.fromkeys(references) if r not in existing]
    if not wanted:
        return text
    if block.depends_on is not None:
        return _extend_list(text, block.depends_on, wanted)
    return _insert_attribute(text, block, wanted)


def _extend_list(text: str, dep: DependsOn, wanted: list[str]) -> str:
    if dep.last_item_end is None:
        at = dep.open_bracket + 1
        return text[:at] + ", ".join(wanted) + text[at:]
    inside = text[dep.open_bracket : dep.close_bracket]
    if "\n" in inside:
        line_start = text.rfind("\n", 0, dep.last_item_end) + 1
        indent = re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]
        sep = ",\n" + indent
    else:
        sep = ", "
    at = dep.last_item_end
    return text[:at] + sep + sep.join(wanted) + text[at:]


def _insert_attribute(text: str, block: Block, wanted: list[str]) -> str:
    line = f"depends_on = [{', '.join(wanted)}]"
    after_brace = block.open_brace + 1
    newline = text.find("\n", after_brace)
    rest_of_line = text[after_brace : newline if newline != -1 else len(text)].strip()
    if (
        newline != -1
        and newline < block.close_brace
        and (not rest_of_line or rest_of_line[0] == "#" or rest_of_line.startswith("//"))
    ):
        # The usual layout: the brace ends its line; the new argument becomes the body's first line.
        indent = _body_indent(text, newline + 1, block.close_brace)
        at = newline + 1
        return text[:at] + indent + line + "\n" + text[at:]
    # A one-line block (`{ x = 1 }` or `{}`): open it up so that each argument is on its own line.
    head = text[:after_brace] + "\n  " + line + "\n"
    content = text[after_brace : block.close_brace].strip()
    middle = "  " + content + "\n" if content else ""
    return head + middle + text[block.close_brace :]


def _body_indent(text: str, start: int, end: int) -> str:
    for raw in text[start:end].splitlines():
        if raw.strip():
            return re.match(r"[ \t]*", raw).group(0) or "  "  # type: ignore[union-attr]
    return "  "


def dependency_order(addresses: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Topological order of `addresses` (edges are (resource, depends_on)): dependencies first, and
    among the resources ready at one point, by address. HclProblem on a cycle."""
    waiting: dict[str, int] = dict.fromkeys(addresses, 0)
    dependents: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        waiting[a] += 1
        dependents[b].append(a)
    ready = [a for a, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for d in dependents[node]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, d)
    if len(order) != len(addresses):
        stuck = sorted(set(addresses) - set(order))
        raise HclProblem(f"the dependencies of {', '.join(stuck)} form a cycle")
    return order


def assemble_main(blocks: dict[str, tuple[int, str]], edges: list[tuple[str, str]]) -> str:
    """main.tf from {address: (version, hcl)}: blocks in `dependency_order`, each after a
    `# xcf: <address> v<version>` line, with its dependencies merged into its `depends_on`."""
    needs: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        needs[a].append(b)
    parts: list[str] = []
    for address in dependency_order(sorted(blocks), edges):
        version, text = blocks[address]
        if needs[address]:
            try:
                text = add_depends_on(text, needs[address])
            except HclProblem as exc:
                raise HclProblem(f"{address} v{version}: {exc}") from None
        parts.append(f"# xcf: {address} v{version}\n{text.rstrip()}\n")
    return "\n".join(parts)
