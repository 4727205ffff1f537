"""Archives are bounded by what they unpack to: hard links, symlink chains and comparisons (issue 11)."""

from __future__ import annotations

import tarfile

import pytest
from fastapi.testclient import TestClient

from tests.rss import peak_rss_growth
from tests.workspaces.conftest import API, make_workspace, member, targz, upload
from xcloudflow.errors import Invalid, TooLarge
from xcloudflow.workspaces import archive
from xcloudflow.workspaces.archive import ArchiveLimits

WS = f"{API}/shop/dev"
MiB = 1024 * 1024


def _hardlink_bomb(copies: int, size: int = 4 * MiB) -> bytes:
    # One large, very compressible file and `copies` hard links to it: a few KB uploaded.
    links = [member(f"copy{i}.txt", tarfile.LNKTYPE, "big.txt") for i in range(copies)]
    return targz({"big.txt": b"a\n" * (size // 2)}, members=links)


def test_hard_links_count_toward_the_unpacked_size() -> None:
    data = _hardlink_bomb(copies=3, size=1000)
    limits = ArchiveLimits(max_unpacked_bytes=3999)
    with pytest.raises(TooLarge) as err:
        archive.inspect(data, limits)
    assert "unpacks to more than 3999 bytes" in err.value.message
    assert "copy2.txt" in err.value.message and "hard links count" in err.value.message
    files = archive.inspect(data, ArchiveLimits(max_unpacked_bytes=4000))
    assert sum(f["size"] for f in files) == 4000  # the listing and the limit agree


def test_a_hard_link_bomb_upload_is_refused_and_nothing_stored(admin: TestClient) -> None:
    make_workspace(admin)
    bomb = _hardlink_bomb(copies=325)  # 1,300 MiB listed from a few hundred KB before the fix
    assert len(bomb) < 400 * 1024
    with peak_rss_growth() as growth:
        resp = admin.post(f"{WS}/code-versions", content=bomb, headers={"Content-Type": "application/gzip"})
    assert resp.status_code == 413, resp.text
    assert "hard links count as copies" in resp.json()["error"]["message"]
    assert growth.mib < 100
    assert admin.get(f"{WS}/code-versions").json() == []


@pytest.mark.parametrize(
    "links",
    [
        [("a/l", ".."), ("a/l2", "l/..")],
        [("a/l2", "l/.."), ("a/l", "..")],  # the order in the archive does not matter
        [("x", "y/../.."), ("y", "z"), ("z", "w"), ("w", ".")],  # through a chain of links
        [("p", "q"), ("q", "p")],  # a loop
    ],
)
def test_symlink_chains_that_leave_the_tree_are_refused(links: list[tuple[str, str]]) -> None:
    data = targz(
        {"main.tf": "x"},
        members=[member("a", tarfile.DIRTYPE), *(member(n, tarfile.SYMTYPE, t) for n, t in links)],
    )
    with pytest.raises(Invalid) as err:
        archive.inspect(data)
    message = err.value.message
    assert "outside the archive" in message or "chain of more than" in message
    assert "/tmp" not in message and "/var" not in message  # only the archive's own names


def test_links_that_stay_inside_are_kept() -> None:
    data = targz(
        {"modules/net/main.tf": "x"},
        members=[
            member("a", tarfile.DIRTYPE),
            member("a/root", tarfile.SYMTYPE, ".."),
            member("a/net", tarfile.SYMTYPE, "root/modules/net"),
            member("a/dangling", tarfile.SYMTYPE, "nothing/here"),
        ],
    )
    assert [f["path"] for f in archive.inspect(data)] == ["modules/net/main.tf"]


def test_a_symlink_chain_upload_is_refused(admin: TestClient) -> None:
    make_workspace(admin)
    data = targz(
        {"main.tf": "x"},
        members=[
            member("a", tarfile.DIRTYPE),
            member("a/l", tarfile.SYMTYPE, ".."),
            member("a/l2", tarfile.SYMTYPE, "l/.."),
        ],
    )
    resp = admin.post(f"{WS}/code-versions", content=data, headers={"Content-Type": "application/gzip"})
    assert resp.status_code == 400, resp.text
    assert "'a/l2'" in resp.json()["error"]["message"]
    assert admin.get(f"{WS}/code-versions").json() == []


def test_compare_stops_diffing_at_its_budget() -> None:
    # Stored before the fix: 4 KB of hard links whose comparison answered 311 MiB.
    text = "".join(f"line {i}\n" for i in range(19_000)).encode()
    links = [member(f"copy{i}.txt", tarfile.LNKTYPE, "big.txt") for i in range(300)]
    old = targz({"big.txt": text}, members=links)
    new = targz({"big.txt": text.replace(b"line", b"LINE")}, members=links)
    with peak_rss_growth() as growth:
        changes = archive.compare(old, new, archive.STORED_LIMITS)
    assert len(changes["changed"]) == 301
    total = sum(len(c["diff"]) for c in changes["changed"])
    assert total < archive.MAX_COMPARE_DIFF_BYTES + 64 * 1024
    assert changes["changed"][-1]["diff"].startswith("diff not shown")
    assert growth.mib < 100


def test_files_with_too_many_lines_are_not_diffed() -> None:
    diff = archive.file_diff("big.txt", b"a\n" * 100_000, b"b\n" * 100_000)
    assert diff == f"diff not shown: the file has more than {archive.MAX_DIFF_LINES} lines\n"


def test_compare_answer_is_bounded_through_the_api(admin: TestClient) -> None:
    make_workspace(admin)
    text = "".join(f"line {i}\n" for i in range(19_000))  # 200 KB, a few KB compressed
    files_a = {f"f{i}.txt": text for i in range(12)}
    files_b = {f"f{i}.txt": text.upper() for i in range(12)}
    upload(admin, targz(files_a))
    upload(admin, targz(files_b))
    resp = admin.get(f"{WS}/code-versions/compare", params={"from": 1, "to": 2})
    assert resp.status_code == 200, resp.text
    assert len(resp.content) < archive.MAX_COMPARE_DIFF_BYTES * 2  # JSON escaping of newlines included
    assert any(c["diff"].startswith("diff not shown") for c in resp.json()["changed"])
