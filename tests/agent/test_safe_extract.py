"""The agent's own check of the archives it extracts (code versions and compose snapshots).

Archives are built in memory as a hostile server (or one from before the server-side checks) could
send them; each must be refused whole, with a message that names the member and never the agent's
directory.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from xcloudflow.agent.run_handler import UnsafeArchive, safe_extract

Member = tuple[str, str, str]  # name, kind (file, dir, symlink, hardlink), content or target


def _targz(*members: Member) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = value.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[
                kind
            ]
            info.mode = 0o755 if kind == "dir" else 0o777
            info.linkname = value
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("members", "why"),
    [
        # Each link is inside by its text; through `l`, `l2` is the directory above the tree.
        ([("a", "dir", ""), ("a/l", "symlink", ".."), ("a/l2", "symlink", "l/..")], "leads out of the tree"),
        ([("a", "dir", ""), ("a/l2", "symlink", "l/.."), ("a/l", "symlink", "..")], "leads out of the tree"),
        (
            [("x", "symlink", "y/../.."), ("y", "symlink", "z"), ("z", "symlink", ".")],
            "leads out of the tree",
        ),
        ([("p", "symlink", "q"), ("q", "symlink", "p")], "chain of more than 40"),
        # A member written through a link whose directory is the tree's root.
        (
            [
                ("d", "dir", ""),
                ("d/e", "dir", ""),
                ("d/e/l", "symlink", "../.."),
                ("d/e/l/x", "symlink", "../../.."),
            ],
            "goes through the symlink 'd/e/l'",
        ),
        ([("link", "symlink", "/etc/passwd")], "leads out of the tree"),
        ([("hard", "hardlink", "../outside")], "contains '..'"),
        ([("hard", "hardlink", "/etc/passwd")], "is an absolute path"),
        ([("a", "dir", ""), ("a/l", "symlink", ".."), ("hard", "hardlink", "a/l/../x")], "contains '..'"),
        ([("a", "dir", ""), ("a/l", "symlink", ".."), ("a/l/f", "file", "x")], "goes through the symlink"),
        ([("up", "symlink", "."), ("up2", "symlink", "up/.."), ("h", "hardlink", "up2/x")], "leads out"),
        ([("../escape.txt", "file", "x")], "contains '..'"),
        ([("dir/../../escape.txt", "file", "x")], "contains '..'"),
        ([("/tmp/escape.txt", "file", "x")], "is an absolute path"),
        ([("same", "file", "x"), ("same", "symlink", "..")], "appears twice"),
    ],
)
def test_hostile_archives_are_refused_whole(tmp_path: Path, members: list[Member], why: str) -> None:
    dest = tmp_path / "run" / "source"
    dest.mkdir(parents=True)
    data = _targz(("main.tf", "file", "x"), *members)
    with pytest.raises(UnsafeArchive) as err:
        safe_extract(data, dest)
    message = str(err.value)
    assert why in message
    assert str(tmp_path) not in message and "/tmp/" not in message.replace("'/tmp/escape.txt'", "")
    assert list(dest.iterdir()) == []  # refused before anything was written
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "run" / "escape.txt").exists()


def test_the_stdlib_filter_message_is_not_shown(tmp_path: Path) -> None:
    """What only the extraction filter sees (a link made outside by a directory already on the disk)
    is refused with the member's name, not the agent's path."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "up").symlink_to("..")  # left by nobody in a real run; stands for any on-disk surprise
    data = _targz(("main.tf", "file", "x"), ("up/x", "file", "outside"))
    with pytest.raises(UnsafeArchive) as err:
        safe_extract(data, dest)
    message = str(err.value)
    assert "'up/x'" in message and "refused while extracting" in message
    assert str(tmp_path) not in message and "outside the destination" not in message
    assert not (tmp_path / "x").exists()


def test_links_that_stay_inside_are_extracted(tmp_path: Path) -> None:
    data = _targz(
        ("modules/net/main.tf", "file", "net"),
        ("a", "dir", ""),
        ("a/root", "symlink", ".."),
        ("a/net", "symlink", "root/modules/net"),
        ("a/main.tf", "symlink", "net/main.tf"),
        ("copy.tf", "hardlink", "modules/net/main.tf"),
        ("dangling", "symlink", "nowhere/yet"),
    )
    assert safe_extract(data, tmp_path) == 1  # hard links are not counted as files
    assert (tmp_path / "a" / "main.tf").read_text() == "net"
    assert (tmp_path / "copy.tf").read_text() == "net"
