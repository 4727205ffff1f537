"""Reading a compose repository at one commit, with the git CLI, and packing a snapshot for agents.

The control plane plans what Git says, so a plan is always made from ONE commit: `checkout` resolves a
ref to a 40-hex sha and extracts exactly that tree (`git archive`) into a temporary directory. The
working tree (`working_tree`) is only for local commands (validate, route, graph) where a person wants
to see uncommitted edits.

Safety rules this module must keep: git never prompts (GIT_TERMINAL_PROMPT=0) and never runs hooks
(core.hooksPath=/dev/null); credentials in URLs are masked in every message; local paths (and file://)
are refused unless under one of the roots the caller allows (the server's setting), so an API user
cannot make the server read arbitrary directories; extracted archives never write outside their
directory, and a commit is streamed from `git archive` with a byte count (`RepoLimits`), never held
in memory whole, git killed once it unpacks to more than the limit. It knows nothing of the DSL.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from xcloudflow.errors import Invalid

SHA = re.compile(r"^[0-9a-f]{40}$")
_URL = re.compile(r"^(https?|ssh|git|file)://", re.IGNORECASE)
_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:(?!//)")  # git@github.com:org/repo.git
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
LOCAL_ROOTS_SETTING = "XCF_COMPOSE_LOCAL_ROOTS"
_BOILERPLATE = ("Please make sure you have the correct access rights", "and the repository exists")
MAX_UNPACKED_SETTING = "XCF_COMPOSE_REPO_MAX_BYTES"
DEFAULT_MAX_UNPACKED_BYTES = 256 * 1024 * 1024
_CHUNK = 64 * 1024
# The tree of a commit that removed every file (SHA-1 and SHA-256 repositories).
_EMPTY_TREES = {
    "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}


@dataclass(frozen=True)
class RepoSnapshot:
    root: Path  # directory holding the files
    source: str  # what the user gave: a path or a git URL
    ref: str | None  # requested ref (branch/tag/sha); None = HEAD / working tree
    commit: str | None  # resolved 40-hex sha; None for an uncommitted working tree


def mask(text: str) -> str:
    """`https://user:token@host/x` -> `https://***@host/x`, wherever it appears in `text`. A bare
    user name is kept for ssh (`ssh://git@host`), masked for http(s), where it is often a token."""

    def hide(match: re.Match[str]) -> str:
        userinfo = match.group(0)[len(match.group("scheme")) : -1]
        if ":" not in userinfo and not match.group("scheme").lower().startswith("http"):
            return match.group(0)
        return match.group("scheme") + "***@"

    return _CREDENTIALS.sub(hide, text)


def is_url(source: str) -> bool:
    return bool(_URL.match(source) or _SCP.match(source))


def working_tree(path: Path) -> RepoSnapshot:
    """The files as they are on disk (uncommitted edits included); no git needed."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise Invalid(f"repository {path}: not a directory")
    return RepoSnapshot(root=root.resolve(), source=str(path), ref=None, commit=None)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        }
    )
    return env


def _git_command(args: Sequence[str]) -> list[str]:
    return ["git", "-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never", *args]


def _git_failure(stderr: bytes, returncode: int, what: str) -> Invalid:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    useful = [line for line in lines if line and not line.startswith(_BOILERPLATE)]
    reason = "; ".join(useful[-3:]) or f"exit {returncode}"
    return Invalid(mask(f"{what}: {reason}"), details={"source": mask(what)})


def _git(args: Sequence[str], *, cwd: Path | None, timeout: float, what: str) -> bytes:
    try:
        done = subprocess.run(
            _git_command(args), cwd=cwd, env=_env(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Invalid(mask(f"{what}: git timed out after {timeout:g} s")) from exc
    except FileNotFoundError as exc:
        raise Invalid(f"{what}: the git command is not installed") from exc
    if done.returncode != 0:
        raise _git_failure(done.stderr, done.returncode, what)
    return done.stdout


def under(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path` (symbolic links resolved) is one of `roots` or inside one."""
    resolved = path.resolve()
    return any(resolved == r.resolve() or resolved.is_relative_to(r.resolve()) for r in roots)


def _local_path(source: str) -> Path | None:
    if source.lower().startswith("file://"):
        return Path(source[len("file://") :])
    if is_url(source):
        return None
    path = Path(source).expanduser()
    if not path.is_absolute():
        raise Invalid(f"repository {source!r}: a local repository must be an absolute path or a git URL")
    return path


def _resolve(git_args: list[str], ref: str | None, *, source: str, timeout: float) -> str:
    """The 40-hex commit `ref` (a branch, tag or sha; None = HEAD) names, or Invalid."""
    wanted = ref or "HEAD"
    for candidate in (wanted, f"refs/tags/{wanted}", f"origin/{wanted}"):
        try:
            out = _git(
                [
                    *git_args,
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    f"{candidate}^{{commit}}",
                ],
                cwd=None,
                timeout=timeout,
                what=f"repository {source}",
            )
        except Invalid:
            continue
        sha = out.decode().strip()
        if SHA.match(sha):
            return sha
    if ref is None:
        raise Invalid(f"repository {source}: it has no commit yet (HEAD does not point to a commit)")
    raise Invalid(f"repository {source}: unknown ref {ref!r} (no such branch, tag or commit)")


@dataclass(frozen=True)
class RepoLimits:
    """How much of one commit may be unpacked (the tar stream `git archive` writes: file contents
    and 512-byte headers), and the setting that says so, named in the error."""

    max_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    setting: str = MAX_UNPACKED_SETTING


class _OverLimit(Exception):
    pass


class _CountingPipe:
    """git's stdout for tarfile's stream mode, read in chunks, refusing to read past `limit` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self._pipe = pipe
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._pipe.read(min(size, _CHUNK) if size >= 0 else _CHUNK)
        self.count += len(chunk)
        if self.count > self._limit:
            raise _OverLimit
        return chunk


def _extract_archive(
    git_args: list[str], treeish: str, dest: Path, *, limits: RepoLimits, timeout: float, what: str
) -> None:
    """`git archive` streamed into `dest`: at most `limits.max_bytes` of tar are read, and git is
    killed as soon as they are passed, so a small repository holding a very compressible large file
    costs neither memory nor more disk than the limit. The caller's temporary directory goes with it."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(
                _git_command([*git_args, "archive", "--format=tar", treeish]),
                env=_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        except FileNotFoundError as exc:
            raise Invalid(f"{what}: the git command is not installed") from exc
        assert proc.stdout is not None

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        refused: Invalid | None = None
        over_limit = finished = killed = False
        try:
            pipe = _CountingPipe(proc.stdout, limits.max_bytes)
            with tarfile.open(fileobj=cast(IO[bytes], pipe), mode="r|") as tar:
                tar.extractall(dest, filter="data")
            while pipe.read(_CHUNK):  # the end-of-archive padding, so git can exit
                pass
            finished = True
        except _OverLimit:
            over_limit = True
            refused = Invalid(
                mask(
                    f"{what}: its files unpack to more than {limits.max_bytes} bytes (setting {limits.setting})"
                ),
                details={"rule": "max_unpacked_bytes", "limit": limits.max_bytes, "setting": limits.setting},
            )
        except (tarfile.TarError, EOFError) as exc:
            # The data filter's message holds this server's path: name the file only.
            member = getattr(getattr(exc, "tarinfo", None), "name", None)
            shown = f"file {member!r}" if member else "the archive"
            refused = Invalid(mask(f"{what}: {shown} cannot be extracted safely ({type(exc).__name__})"))
        except OSError as exc:  # its message holds this server's path too
            refused = Invalid(mask(f"{what}: the files cannot be written ({exc.strerror})"))
        finally:
            timer.cancel()
            if not finished and proc.poll() is None:
                proc.kill()
                killed = True
            proc.wait()
            proc.stdout.close()
        if timed_out.is_set():
            raise Invalid(mask(f"{what}: git timed out after {timeout:g} s"))
        if refused is not None and (over_limit or killed):
            raise refused  # git was killed for it: its exit status says nothing
        if proc.returncode != 0:
            stderr.seek(0)
            raise _git_failure(stderr.read(), proc.returncode, what)
        if refused is not None:
            raise refused


@contextmanager
def checkout(
    source: str,
    ref: str | None,
    *,
    local_roots: Sequence[Path],
    timeout: float = 120.0,
    limits: RepoLimits = RepoLimits(),
) -> Iterator[RepoSnapshot]:
    """Exactly one commit of `source` (a git URL, or an absolute path to a work tree, a subdirectory
    of one, or a bare repository) extracted into a temporary directory, removed on exit; Invalid
    naming `limits.setting` when its files unpack to more than `limits.max_bytes`."""
    if ref is not None and (not ref.strip() or ref.startswith("-")):
        raise Invalid(f"repository {mask(source)}: invalid ref {ref!r}")
    local = _local_path(source)
    shown = mask(source)
    with tempfile.TemporaryDirectory(prefix="xcf-compose-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        if local is not None:
            if not under(local, local_roots):
                raise Invalid(
                    f"repository {shown}: local paths are refused unless under an allowed root "
                    f"(setting {LOCAL_ROOTS_SETTING}; allowed: {', '.join(map(str, local_roots)) or 'none'})"
                )
            if not local.is_dir():
                raise Invalid(f"repository {shown}: no such directory")
            what = f"repository {shown}"
            bare = _git(
                ["-C", str(local), "rev-parse", "--is-bare-repository"], cwd=None, timeout=timeout, what=what
            )
            if bare.decode().strip() == "true":
                git_args, prefix = ["--git-dir", str(local)], ""
            else:
                top = _git(
                    ["-C", str(local), "rev-parse", "--show-toplevel"], cwd=None, timeout=timeout, what=what
                )
                shown_prefix = _git(
                    ["-C", str(local), "rev-parse", "--show-prefix"], cwd=None, timeout=timeout, what=what
                )
                git_args = ["-C", top.decode().strip()]
                prefix = shown_prefix.decode().strip().rstrip("/")
        else:
            clone = Path(tmp) / "clone.git"
            _git(
                ["clone", "--bare", "--quiet", "--no-tags", "--", source, str(clone)],
                cwd=None,
                timeout=timeout,
                what=f"cannot fetch repository {shown}",
            )
            if ref is not None and not SHA.match(ref):
                # Tags are not fetched by a bare clone with --no-tags; fetch the one asked for, if any.
                with suppress(Invalid):
                    _git(
                        [
                            "--git-dir",
                            str(clone),
                            "fetch",
                            "--quiet",
                            "origin",
                            f"+refs/tags/{ref}:refs/tags/{ref}",
                        ],
                        cwd=None,
                        timeout=timeout,
                        what=f"repository {shown}",
                    )
            git_args, prefix = ["--git-dir", str(clone)], ""
        commit = _resolve(git_args, ref, source=shown, timeout=timeout)
        treeish = f"{commit}:{prefix}" if prefix else commit
        what = f"repository {shown} at {commit[:12]}" + (f" (directory {prefix})" if prefix else "")
        # An empty tree (a commit that removed every file) archives as a lone pax header that
        # tarfile refuses to read: it is an empty snapshot, not an error.
        try:
            tree_id = _git(
                [*git_args, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}:{prefix}"],
                cwd=None,
                timeout=timeout,
                what=what,
            )
        except Invalid:
            if not prefix:
                raise
            raise Invalid(mask(f"{what}: the directory {prefix!r} is not in this commit")) from None
        if tree_id.decode().strip() not in _EMPTY_TREES:
            _extract_archive(git_args, treeish, tree, limits=limits, timeout=timeout, what=what)
        if local is None:
            shutil.rmtree(Path(tmp) / "clone.git", ignore_errors=True)
        yield RepoSnapshot(root=tree, source=source, ref=ref, commit=commit)


@contextmanager
def targz_writer(buffer: io.BytesIO) -> Iterator[tarfile.TarFile]:
    """A tar.gz writer whose gzip header carries no time, so equal members give equal bytes."""
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        yield tar


def archive(root: Path, *, max_bytes: int) -> bytes:
    """A tar.gz of `root` without `.git`: files in sorted order with fixed owner and time (the same
    tree gives the same bytes). Symlinks must stay inside root; more than `max_bytes` -> Invalid."""
    root = root.resolve()
    buffer = io.BytesIO()

    def check_size() -> None:
        if buffer.tell() > max_bytes:
            raise Invalid(f"repository snapshot is larger than {max_bytes} bytes (compressed)")

    with targz_writer(buffer) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            base = Path(dirpath)
            for name in dirnames + sorted(f for f in filenames if f != ".git"):
                path = base / name
                rel = path.relative_to(root).as_posix()
                info = tarfile.TarInfo(rel)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(path)
                    resolved = (base / target).resolve()
                    if os.path.isabs(target) or not resolved.is_relative_to(root):
                        raise Invalid(
                            f"repository file {rel}: symbolic link to {target!r} leaves the repository"
                        )
                    info.type = tarfile.SYMTYPE
                    info.linkname = target
                    info.mode = 0o777
                    tar.addfile(info)
                elif stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                elif stat.S_ISREG(st.st_mode):
                    info.size = st.st_size
                    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                check_size()
    check_size()
    return buffer.getvalue()
