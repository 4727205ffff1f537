"""Unified diffs between two config versions, for history, `xcf conflux diff` and GitOps previews.

Pure text in, text out; never decides what is secret: callers mask secrets before diffing.
"""

from __future__ import annotations

import difflib


def unified(old: str, new: str, *, old_label: str, new_label: str) -> str:
    """A unified diff (3 lines of context) that ends in a newline, or "" when the texts are equal.
    A missing newline at the end of either text is marked the way `diff -u` marks it."""
    if old == new:
        return ""
    lines = difflib.unified_diff(
        _lines(old), _lines(new), fromfile=old_label, tofile=new_label, lineterm="\n"
    )
    return "".join(lines)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
