"""Uploaded configurations (.tar.gz): validation, safe extraction and comparison.

Pure: no database, no I/O other than the destination directory of `extract_to`. Every archive a
person uploads passes `inspect` before it is stored, and again before it is extracted on an agent, so
an archive never writes outside its directory: no absolute paths, no `..`, no NUL, no devices or
fifos, links only to targets inside the tree, no path that goes through a symlink (a lexical check of
a link's target is only sound when no directory on the way is itself a link), no duplicates.

Sizes count what extraction and reading produce: a hard link costs its target's size again (a 305 KB
upload of hard links to one large file listed as 1,300 MiB), and a comparison stops diffing once its
diffs reach `MAX_COMPARE_DIFF_BYTES`. A symlink's target is resolved through the other symlinks of the
tree, as the kernel will (`a/l -> ..` then `a/l2 -> l/..` leaves the tree although each is lexically
inside), by `xcloudflow.tarlinks`, the function the agent uses too. Errors name members and targets
as the archive spells them, never a path of the machine.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xcloudflow.errors import Invalid, TooLarge
from xcloudflow.tarlinks import LinkEscape, TreeLinks

MiB = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
# Above this size a changed text file is reported without its diff (the diff would be the file).
MAX_DIFF_BYTES = 1 * MiB
# difflib holds every line of both sides (and an index of them): 500,000 short lines cost ~150 MB.
MAX_DIFF_LINES = 20_000
# All diffs of one comparison together; the files after that are listed with a note instead.
MAX_COMPARE_DIFF_BYTES = 4 * MiB


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 50 * MiB  # compressed, as uploaded
    max_unpacked_bytes: int = 200 * MiB  # the regular files' sizes added up
    max_members: int = 10_000


DEFAULT_LIMITS = ArchiveLimits()
# For archives already checked when they were stored (the limits may have been lowered since).
STORED_LIMITS = ArchiveLimits(max_bytes=2**62, max_unpacked_bytes=2**62, max_members=2**31)


@dataclass
class _Contents:
    files: list[dict[str, Any]]
    data: dict[str, bytes]


def _bad(member: str, rule: str) -> Invalid:
    return Invalid(f"archive member {member!r}: {rule}", details={"member": member, "rule": rule})


def _normalize(name: str) -> str:
    """The member path without `./` and empty components; raises for unsafe names."""
    if "\x00" in name:
        raise _bad(name, "the path contains a NUL character")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise _bad(name, "absolute paths are not allowed")
    if "\\" in name:
        raise _bad(name, "backslashes are not allowed in paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _bad(name, "'..' components are not allowed")
    return "/".join(parts)


def _check_gzip(data: bytes, limits: ArchiveLimits) -> None:
    if len(data) > limits.max_bytes:
        raise TooLarge(
            f"the archive is {len(data)} bytes; the limit is {limits.max_bytes} bytes compressed",
            details={"rule": "max_bytes", "limit": limits.max_bytes},
        )
    if not data.startswith(GZIP_MAGIC):
        raise Invalid(
            "the upload is not a gzip-compressed tar archive (.tar.gz); make one with "
            "`tar -czf config.tar.gz -C dir .`",
            details={"rule": "gzip"},
        )


def _body(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)  # a hard link reads its target
    return stream.read() if stream is not None else b""


def _read(data: bytes, limits: ArchiveLimits, *, keep: Callable[[str], bool] | None) -> _Contents:
    _check_gzip(data, limits)
    seen: dict[str, str] = {}  # path -> kind (file, dir, symlink)
    files: dict[str, dict[str, Any]] = {}
    contents: dict[str, bytes] = {}
    links: dict[str, str] = {}  # symlink path -> target as written
    unpacked = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            count = 0
            for member in tar:
                count += 1
                if count > limits.max_members:
                    raise TooLarge(
                        f"the archive has more than {limits.max_members} members",
                        details={"rule": "max_members", "limit": limits.max_members},
                    )
                path = _normalize(member.name)
                if not path:
                    if member.isdir():
                        continue  # the `.` entry of `tar -C dir .`
                    raise _bad(member.name, "a member must have a name")
                if path in seen:
                    raise _bad(member.name, "the path appears twice in the archive")
                if member.isdir():
                    seen[path] = "dir"
                elif member.issym():
                    target = member.linkname
                    if "\x00" in target:
                        raise _bad(member.name, "the link target contains a NUL character")
                    if target.startswith("/"):
                        raise _bad(member.name, f"symlink to the absolute path {target!r}")
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                    if resolved == ".." or resolved.startswith("../"):
                        raise _bad(member.name, f"symlink to {target!r} points outside the archive")
                    seen[path] = "symlink"
                    links[path] = target
                elif member.islnk():
                    target = _normalize(member.linkname)
                    if seen.get(target) != "file":
                        raise _bad(
                            member.name,
                            f"hard link to {member.linkname!r}, which is not a regular file earlier "
                            "in the archive",
                        )
                    unpacked += files[target]["size"]  # extracted or read again: it costs as much
                    _check_unpacked(unpacked, limits, member.name)
                    seen[path] = "file"
                    files[path] = {**files[target], "path": path}
                    if keep is not None and keep(path):
                        contents[path] = contents[target] if target in contents else _body(tar, member)
                elif member.isreg():
                    unpacked += member.size
                    _check_unpacked(unpacked, limits, member.name)
                    body = _body(tar, member)
                    seen[path] = "file"
                    files[path] = {
                        "path": path,
                        "size": len(body),
                        "sha256": hashlib.sha256(body).hexdigest(),
                    }
                    if keep is not None and keep(path):
                        contents[path] = body
                elif member.ischr() or member.isblk():
                    raise _bad(member.name, "device files are not allowed")
                elif member.isfifo():
                    raise _bad(member.name, "fifos are not allowed")
                else:
                    raise _bad(member.name, f"unsupported member type {member.type!r}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise Invalid(
            f"the upload is not a readable .tar.gz archive: {exc}", details={"rule": "format"}
        ) from exc
    for path in seen:
        parent = posixpath.dirname(path)
        while parent:
            kind = seen.get(parent)
            if kind == "symlink":
                raise _bad(path, f"the path goes through the symlink {parent!r}")
            if kind == "file":
                raise _bad(path, f"{parent!r} is a file, not a directory")
            parent = posixpath.dirname(parent)
    tree = TreeLinks(links)
    for path in sorted(links):
        try:
            tree.resolve(path)
        except LinkEscape as exc:
            raise _bad(path, f"symlink to {links[path]!r}: {exc}") from None
    return _Contents(files=[files[p] for p in sorted(files)], data=contents)


def _check_unpacked(unpacked: int, limits: ArchiveLimits, member: str) -> None:
    if unpacked > limits.max_unpacked_bytes:
        raise TooLarge(
            f"the archive unpacks to more than {limits.max_unpacked_bytes} bytes (at member {member!r}; "
            "hard links count as copies of their target)",
            details={"rule": "max_unpacked_bytes", "limit": limits.max_unpacked_bytes},
        )


def inspect(data: bytes, limits: ArchiveLimits = DEFAULT_LIMITS) -> list[dict[str, Any]]:
    """Validate an uploaded archive; returns its regular files `[{path, size, sha256}]` sorted by path.

    Raises Invalid naming the member and the rule it breaks, or TooLarge.
    """
    return _read(data, limits, keep=None).files


def read_files(
    data: bytes, limits: ArchiveLimits = DEFAULT_LIMITS, only: Callable[[str], bool] | None = None
) -> dict[str, bytes]:
    """The regular files of an archive (those whose path `only` accepts), by path; checked as by `inspect`."""
    return _read(data, limits, keep=only or (lambda _path: True)).data


def extract_to(data: bytes, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> list[dict[str, Any]]:
    """Extract into `dest` (created if missing) after the checks of `inspect`; returns its file list.

    Python's `data` extraction filter (3.11.4+) is applied as a second line of defence: it also drops
    setuid bits and refuses anything that would land outside `dest`.
    """
    files = inspect(data, limits)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; our own checks above already ran
                tar.extractall(dest)  # noqa: S202
    except tarfile.TarError as exc:
        # The filter's message holds the destination path: name the member only.
        member = getattr(getattr(exc, "tarinfo", None), "name", None)
        shown = f"member {member!r} " if member else ""
        raise Invalid(
            f"the archive could not be extracted safely: {shown}refused ({type(exc).__name__})",
            details={"rule": "extract", "member": member},
        ) from exc
    return files


def _text(body: bytes) -> list[str] | None:
    if b"\x00" in body or len(body) > MAX_DIFF_BYTES:
        return None
    try:
        return body.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def file_diff(path: str, old: bytes, new: bytes) -> str:
    """A unified diff of two versions of a text file; "binary files differ" otherwise."""
    a, b = _text(old), _text(new)
    if a is None or b is None:
        return "binary files differ"
    if max(len(a), len(b)) > MAX_DIFF_LINES:
        return f"diff not shown: the file has more than {MAX_DIFF_LINES} lines\n"
    lines = difflib.unified_diff(a, b, fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def compare(a_bytes: bytes, b_bytes: bytes, limits: ArchiveLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """What changed from archive `a` to archive `b`: {added, removed, changed: [{path, diff}]}."""
    a, b = read_files(a_bytes, limits), read_files(b_bytes, limits)
    changed: list[dict[str, str]] = []
    budget = MAX_COMPARE_DIFF_BYTES
    for path in sorted(set(a) & set(b)):
        if a[path] == b[path]:
            continue
        diff = file_diff(path, a[path], b[path]) if budget > 0 else ""
        if budget <= 0 or len(diff) > budget:
            diff = f"diff not shown: this comparison's diffs reached {MAX_COMPARE_DIFF_BYTES} bytes\n"
            budget = 0
        else:
            budget -= len(diff)
        changed.append({"path": path, "diff": diff})
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)), "changed": changed}
