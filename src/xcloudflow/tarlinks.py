"""Where a path inside an unpacked archive really leads, following the archive's own symlinks.

A symlink's target checked by its text alone is not enough: `a/l -> ..` and then `a/l2 -> l/..` are
each inside the tree, yet `a/l2` is the directory above it, because the kernel reads `l/..` after
following `l`. `TreeLinks.resolve` walks a path component by component as the kernel does, replacing
every component that is a symlink of the archive by its target (read from the directory that holds
the link), and refuses the path as soon as a `..` would leave the root, a target is absolute, or more
than `MAX_SYMLINK_HOPS` links are followed (Linux's ELOOP limit).

The server (workspaces/archive.py, on upload) and the agent (agent/run_handler.py, before it writes to
its own disk) both use this one function, so the two checks cannot drift. Pure: no I/O, no domain, no
settings; errors name the link as the archive spells it, never a path of the machine.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_SYMLINK_HOPS = 40  # as Linux's ELOOP
MAX_TARGET_BYTES = 4095  # PATH_MAX - 1: the kernel refuses to create a longer symlink


class LinkEscape(ValueError):
    """A path of the tree leads outside it through its symlinks (the message says how)."""


class TreeLinks:
    """The symlinks of one archive (member path -> target as written, paths without `./`)."""

    def __init__(self, links: Mapping[str, str]) -> None:
        self._links = links
        # A component deeper than every link cannot be a link: skip building its key.
        self._depth = max((key.count("/") + 1 for key in links), default=0)
        # Each link resolved once per archive: (resolved parts, hops it cost), so a tree of many links
        # to long chains costs the sum of its targets, not their product.
        self._resolved: dict[str, tuple[list[str], int]] = {}

    def resolve(self, path: str) -> str:
        """The path `path` leads to (every symlink on the way followed, the last component too);
        "" is the root. A dangling target is fine: nothing is there. Raises LinkEscape."""
        where: list[str] = []
        self._walk(path.split("/"), where, 0, path)
        return "/".join(where)

    def _walk(self, parts: list[str], where: list[str], hops: int, origin: str) -> int:
        for part in parts:
            if part in ("", "."):
                continue
            if part == "..":
                if not where:
                    raise LinkEscape(f"{origin!r} leads outside the archive (through its symlinks)")
                where.pop()
                continue
            where.append(part)
            if len(where) > self._depth:
                continue
            current = "/".join(where)
            target = self._links.get(current)
            if target is None:
                continue
            where.pop()
            known = self._resolved.get(current)
            cost = known[1] if known is not None else 1
            if hops + cost > MAX_SYMLINK_HOPS:
                raise LinkEscape(f"{origin!r} goes through a chain of more than {MAX_SYMLINK_HOPS} symlinks")
            if known is not None:
                where[:] = known[0]
                hops += cost
                continue
            if target.startswith("/"):
                raise LinkEscape(f"the symlink {current!r} points to the absolute path {target!r}")
            if len(target.encode()) > MAX_TARGET_BYTES:
                raise LinkEscape(f"the symlink {current!r} has a target longer than {MAX_TARGET_BYTES} bytes")
            start = hops + 1
            hops = self._walk(target.split("/"), where, start, origin)
            self._resolved[current] = (list(where), hops - start + 1)
        return hops
