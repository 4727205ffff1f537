"""archive.py on real tarfiles: the file list, every refused kind of member, extraction and compare."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tests.workspaces.conftest import member, targz
from xcloudflow.errors import Invalid, TooLarge
from xcloudflow.workspaces import archive
from xcloudflow.workspaces.archive import ArchiveLimits


def _refused(data: bytes, rule: str, limits: ArchiveLimits = archive.DEFAULT_LIMITS) -> Invalid:
    with pytest.raises(Invalid) as err:
        archive.inspect(data, limits)
    assert rule in err.value.message, err.value.message
    return err.value


def test_file_list_is_sorted_with_sizes_and_digests() -> None:
    data = targz(
        {"./main.tf": "a", "modules/net/main.tf": "bb", "README": b"\x00\x01"},
        members=[member("modules", tarfile.DIRTYPE), member("link.tf", tarfile.SYMTYPE, "main.tf")],
    )
    files = archive.inspect(data)
    assert files == [
        {"path": "README", "size": 2, "sha256": hashlib.sha256(b"\x00\x01").hexdigest()},
        {"path": "main.tf", "size": 1, "sha256": hashlib.sha256(b"a").hexdigest()},
        {"path": "modules/net/main.tf", "size": 2, "sha256": hashlib.sha256(b"bb").hexdigest()},
    ]


def test_the_dot_entry_of_tar_c_dir_is_accepted() -> None:
    assert (
        archive.inspect(targz({"main.tf": "x"}, members=[member(".", tarfile.DIRTYPE)]))[0]["path"]
        == "main.tf"
    )


def test_path_traversal_is_refused() -> None:
    err = _refused(targz({"../evil.tf": "x"}), "'..' components")
    assert err.details["member"] == "../evil.tf"
    _refused(targz({"a/../../evil.tf": "x"}), "'..' components")


def test_absolute_paths_are_refused() -> None:
    _refused(targz({"/etc/passwd": "x"}), "absolute paths")


def test_nul_in_a_name_is_refused() -> None:
    info = member("ab.tf", tarfile.REGTYPE)
    info.pax_headers = {"path": "a\x00b.tf"}  # ustar names stop at NUL; a pax header can carry one
    _refused(targz(members=[info]), "NUL")


def test_symlink_out_of_the_tree_is_refused() -> None:
    _refused(targz(members=[member("up", tarfile.SYMTYPE, "../outside")]), "points outside")
    _refused(targz(members=[member("a/b/up", tarfile.SYMTYPE, "../../../x")]), "points outside")
    _refused(targz(members=[member("abs", tarfile.SYMTYPE, "/etc/passwd")]), "absolute path")


def test_symlink_inside_the_tree_is_accepted() -> None:
    data = targz({"a/b/main.tf": "x"}, members=[member("a/b/link", tarfile.SYMTYPE, "../../a/b/main.tf")])
    assert [f["path"] for f in archive.inspect(data)] == ["a/b/main.tf"]


def test_a_path_through_a_symlink_is_refused() -> None:
    # `a/b -> .` is inside; `a/b/up -> ../..` looks inside lexically but lands outside for real.
    data = targz(members=[member("a/b", tarfile.SYMTYPE, "."), member("a/b/up", tarfile.SYMTYPE, "../..")])
    _refused(data, "goes through the symlink 'a/b'")


def test_hardlinks_must_name_an_earlier_regular_file() -> None:
    ok = targz({"main.tf": "x"}, members=[member("copy.tf", tarfile.LNKTYPE, "main.tf")])
    assert [f["path"] for f in archive.inspect(ok)] == ["copy.tf", "main.tf"]
    _refused(targz(members=[member("h", tarfile.LNKTYPE, "../../etc/passwd")]), "'..' components")
    _refused(targz(members=[member("h", tarfile.LNKTYPE, "missing.tf")]), "not a regular file earlier")


def test_devices_and_fifos_are_refused() -> None:
    _refused(targz(members=[member("tty", tarfile.CHRTYPE)]), "device files")
    _refused(targz(members=[member("disk", tarfile.BLKTYPE)]), "device files")
    _refused(targz(members=[member("pipe", tarfile.FIFOTYPE)]), "fifos")


def test_duplicates_are_refused() -> None:
    data = targz({"main.tf": "a", "./main.tf": "b"})
    _refused(data, "appears twice")


def test_a_file_used_as_a_directory_is_refused() -> None:
    _refused(targz({"main.tf": "a", "main.tf/x": "b"}), "is a file, not a directory")


def test_not_gzip_is_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("main.tf")
        tar.addfile(info, io.BytesIO(b""))
    _refused(buf.getvalue(), "not a gzip-compressed tar")
    _refused(b"PK\x03\x04 a zip file", "not a gzip-compressed tar")


def test_gzip_that_is_not_a_tar_is_refused() -> None:
    err = _refused(gzip.compress(b"just some text, not a tar archive" * 20), "not a readable .tar.gz")
    assert err.details["rule"] == "format"
    _refused(targz({"main.tf": "x" * 5000})[:60], "not a readable .tar.gz")


def test_too_big_compressed_unpacked_or_too_many_members() -> None:
    data = targz({"main.tf": "x" * 10_000, "b.tf": "y"})
    with pytest.raises(TooLarge, match="compressed"):
        archive.inspect(data, ArchiveLimits(max_bytes=len(data) - 1))
    with pytest.raises(TooLarge, match="unpacks to more than 10000 bytes"):
        archive.inspect(data, ArchiveLimits(max_unpacked_bytes=10_000))
    with pytest.raises(TooLarge, match="more than 1 members"):
        archive.inspect(data, ArchiveLimits(max_members=1))
    assert len(archive.inspect(data, ArchiveLimits(max_bytes=len(data), max_unpacked_bytes=10_001))) == 2


def test_extract_to_writes_the_tree_and_refuses_bad_archives(tmp_path: Path) -> None:
    data = targz(
        {"main.tf": "a", "mod/x.tf": "b"},
        members=[member("mod/link.tf", tarfile.SYMTYPE, "x.tf")],
    )
    files = archive.extract_to(data, tmp_path / "out")
    assert [f["path"] for f in files] == ["main.tf", "mod/x.tf"]
    assert (tmp_path / "out/mod/x.tf").read_text() == "b"
    assert (tmp_path / "out/mod/link.tf").read_text() == "b"
    with pytest.raises(Invalid, match="points outside"):
        archive.extract_to(targz(members=[member("up", tarfile.SYMTYPE, "../x")]), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_compare_gives_added_removed_and_changed_with_diffs() -> None:
    a = targz({"main.tf": "one\ntwo\n", "old.tf": "x", "logo.png": b"\x89PNG\x00\x01", "same.tf": "s"})
    b = targz({"main.tf": "one\nthree\n", "new.tf": "y", "logo.png": b"\x89PNG\x00\x02", "same.tf": "s"})
    out = archive.compare(a, b)
    assert out["added"] == ["new.tf"] and out["removed"] == ["old.tf"]
    changed = {c["path"]: c["diff"] for c in out["changed"]}
    assert set(changed) == {"logo.png", "main.tf"}
    assert changed["logo.png"] == "binary files differ"
    assert changed["main.tf"].startswith("--- a/main.tf\n+++ b/main.tf\n")
    assert "-two\n" in changed["main.tf"] and "+three\n" in changed["main.tf"]


def test_diff_marks_a_missing_final_newline() -> None:
    assert "\\ No newline at end of file" in archive.file_diff("f", b"a", b"b")


def test_read_files_keeps_only_what_is_asked_for() -> None:
    data = targz(
        {"a/main.tf": "a", "b/other.tf": "b"},
        members=[member("a/copy.tf", tarfile.LNKTYPE, "b/other.tf")],
    )
    assert archive.read_files(data, only=lambda p: p.startswith("a/")) == {
        "a/main.tf": b"a",
        "a/copy.tf": b"b",
    }
    assert archive.read_files(data) == {"a/main.tf": b"a", "b/other.tf": b"b", "a/copy.tf": b"b"}
