"""The one resolver of archive symlinks the server and the agent share."""

from __future__ import annotations

import pytest

from xcloudflow.tarlinks import MAX_SYMLINK_HOPS, LinkEscape, TreeLinks


def _chain(length: int) -> dict[str, str]:
    """l0 -> l1 -> ... -> l{length-1} -> file."""
    links = {f"l{i}": f"l{i + 1}" for i in range(length - 1)}
    links[f"l{length - 1}"] = "file"
    return links


def test_a_chain_of_40_links_resolves_and_41_is_refused() -> None:
    assert TreeLinks(_chain(MAX_SYMLINK_HOPS)).resolve("l0") == "file"
    with pytest.raises(LinkEscape, match="chain of more than 40"):
        TreeLinks(_chain(MAX_SYMLINK_HOPS + 1)).resolve("l0")


def test_reused_links_count_their_hops_again() -> None:
    links = {**_chain(30), **{f"m{i}": f"m{i + 1}" for i in range(11)}, "m11": "l0"}
    tree = TreeLinks(links)
    assert tree.resolve("l0") == "file"  # remembered, with its 30 hops
    with pytest.raises(LinkEscape, match="chain of more than 40"):
        tree.resolve("m0")  # 12 more


@pytest.mark.parametrize(
    ("links", "path"),
    [
        ({"a/l": "..", "a/l2": "l/.."}, "a/l2"),
        ({"x": "/etc"}, "x"),
        ({"x": "a/" * 2100}, "x"),  # longer than the kernel's PATH_MAX
    ],
)
def test_escapes(links: dict[str, str], path: str) -> None:
    with pytest.raises(LinkEscape):
        TreeLinks(links).resolve(path)


def test_resolves_as_the_kernel_does() -> None:
    tree = TreeLinks({"a/root": "..", "a/net": "root/modules/net", "b": "a/net/../x"})
    assert tree.resolve("a/net") == "modules/net"
    assert tree.resolve("b") == "modules/x"
    assert tree.resolve("a/root/a/root/c") == "c"
