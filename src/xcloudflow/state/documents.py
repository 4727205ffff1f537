"""Reading state documents: uploads spooled to disk, streaming validation, and parsed views.

An upload is spooled (memory up to a threshold, then a temporary file) while its size, MD5, SHA-256,
UTF-8 validity and nesting depth are computed chunk by chunk, so a large body is never held in memory
several times and a deep one (ijson's cost grows with the square of the depth) is refused at the
first chunk that goes too deep, before any parser sees it. Stored versions are read through the same
depth guard: states stored before the limit existed cannot make a reader (inventory, diff) explode.
Validation then streams the spooled bytes through ijson and only keeps the few top-level facts it
needs (version, serial, lineage, the shape of `resources`). No database access here.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

from xcloudflow import bounded
from xcloudflow.errors import Invalid, TooLarge

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TOOLS = ("terraform", "pulumi")
READ_CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 4 * 1024 * 1024


def check_name(value: str, *, field_name: str) -> str:
    if not NAME_RE.match(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise Invalid(
            f"{field_name} {shown!r} is not a valid name: use 1-128 characters, letters, digits, '.', '_' "
            "or '-', starting with a letter or digit",
            details={"field": field_name},
        )
    return value


def check_tool(value: str) -> str:
    if value not in TOOLS:
        raise Invalid(
            f"unknown tool {value!r}: expected one of {', '.join(TOOLS)}", details={"field": "tool"}
        )
    return value


@dataclass(frozen=True)
class StackRef:
    tool: str
    project: str
    stack: str

    @classmethod
    def parse(cls, tool: str, project: str, stack: str) -> StackRef:
        return cls(
            check_tool(tool), check_name(project, field_name="project"), check_name(stack, field_name="stack")
        )

    def __str__(self) -> str:
        return f"{self.tool}/{self.project}/{self.stack}"


class Upload:
    """A request body being received: spooled, measured and hashed as it arrives."""

    def __init__(self, *, max_bytes: int, max_depth: int | None = None) -> None:
        self.max_bytes = max_bytes
        self._depth = bounded.JsonDepthGuard(max_depth, what="the state")
        self.size = 0
        self._md5 = hashlib.md5()  # noqa: S324 - Content-MD5 is the protocol's integrity check
        self._sha256 = hashlib.sha256()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int, max_depth: int | None = None) -> Upload:
        upload = cls(max_bytes=max_bytes, max_depth=max_depth)
        upload.add(data)
        return upload.finish()

    def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(
                f"state is larger than the limit of {self.max_bytes} bytes (XCF_STATE_MAX_BYTES)",
                details={"limit": self.max_bytes},
            )
        try:
            self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:
            offset = self.size - len(chunk) + exc.start
            raise Invalid(f"body is not valid UTF-8 (byte {offset})", details={"offset": offset}) from exc
        self._depth.feed(chunk)
        self._md5.update(chunk)
        self._sha256.update(chunk)
        self._file.write(chunk)

    def finish(self) -> Upload:
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise Invalid("body ends inside a UTF-8 sequence") from exc
        self._file.seek(0)
        return self

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def check_content_md5(self, header: str | None) -> None:
        """Compare a Content-MD5 header (base64 of the digest, RFC 1864) with what arrived."""
        if header is None:
            return
        try:
            given = base64.b64decode(header.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Invalid("Content-MD5 header is not base64", details={"header": "Content-MD5"}) from exc
        if given != self._md5.digest():
            raise Invalid(
                "Content-MD5 does not match the body: it was changed or truncated in transit",
                details={"header": "Content-MD5", "expected": base64.b64encode(self._md5.digest()).decode()},
            )

    def chunks(self) -> Iterator[bytes]:
        self._file.seek(0)
        while chunk := self._file.read(READ_CHUNK):
            yield chunk

    def stream(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()


@dataclass
class DocumentFacts:
    format_version: int
    serial: int | None = None
    lineage: str | None = None
    terraform_version: str | None = None
    resource_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _events(fh: IO[bytes]) -> Iterator[tuple[str, str, Any]]:
    try:
        yield from ijson.parse(fh, use_float=True)
    except ijson.JSONError as exc:
        first_line = (str(exc).strip().splitlines() or ["parse error"])[0]
        raise Invalid(f"body is not valid JSON: {first_line}") from exc


def _scan(fh: IO[bytes], wanted: dict[str, str]) -> tuple[dict[str, tuple[str, Any]], dict[str, int], bool]:
    """One streaming pass: top-level type, the scalar/containers named in `wanted` and item counts."""
    found: dict[str, tuple[str, Any]] = {}
    counts: dict[str, int] = {}
    first = True
    top_is_object = False
    for prefix, event, value in _events(fh):
        if first:
            top_is_object = event == "start_map"
            first = False
            if not top_is_object:
                # Keep reading only to report broken JSON before shape errors.
                continue
        if prefix in wanted and prefix not in found and event not in ("map_key", "end_map", "end_array"):
            found[prefix] = (event, value)
        elif (
            (event == "start_map" and prefix.endswith(".item"))
            or (event == "string" and prefix.endswith(".item.urn"))
            or (event == "string" and prefix.endswith(".item.type"))
        ):
            counts[prefix] = counts.get(prefix, 0) + 1
    if first:
        raise Invalid("body is empty: expected a state document")
    return found, counts, top_is_object


def _int(found: dict[str, tuple[str, Any]], key: str, what: str) -> int:
    event, value = found.get(key, ("missing", None))
    if event != "number" or not float(value).is_integer():
        shown = "missing" if event == "missing" else f"a {event}"
        raise Invalid(f"{what}: `{key}` must be an integer, is {shown}", details={"field": key})
    return int(value)


def inspect_terraform(fh: IO[bytes]) -> DocumentFacts:
    what = "not a Terraform state"
    found, _counts, is_obj = _scan(
        fh,
        {"version": "", "serial": "", "lineage": "", "terraform_version": "", "resources": "", "modules": ""},
    )
    if not is_obj:
        raise Invalid(f"{what}: the body must be a JSON object")
    version = _int(found, "version", what)
    if version < 4 and "modules" in found:
        raise Invalid(
            f"Terraform state format version {version} is not supported: run Terraform 0.12 or newer "
            "once on this state to upgrade it to version 4",
            details={"field": "version"},
        )
    if version != 4:
        raise Invalid(
            f"{what}: unsupported state format version {version} (expected 4)", details={"field": "version"}
        )
    serial = _int(found, "serial", what)
    if serial < 0:
        raise Invalid(f"{what}: `serial` must not be negative", details={"field": "serial"})
    event, lineage = found.get("lineage", ("missing", None))
    if event != "string" or not lineage:
        raise Invalid(f"{what}: `lineage` must be a non-empty string", details={"field": "lineage"})
    if len(lineage) > 128:
        raise Invalid(f"{what}: `lineage` is longer than 128 characters", details={"field": "lineage"})
    event, _ = found.get("resources", ("missing", None))
    if event != "start_array":
        raise Invalid(f"{what}: `resources` must be an array", details={"field": "resources"})
    tf_event, tf_version = found.get("terraform_version", ("missing", None))
    return DocumentFacts(
        format_version=version,
        serial=serial,
        lineage=lineage,
        terraform_version=tf_version if tf_event == "string" else None,
        resource_count=_counts.get("resources.item", 0),
    )


def inspect_pulumi(fh: IO[bytes]) -> DocumentFacts:
    what = "not a Pulumi stack export"
    found, counts, is_obj = _scan(fh, {"version": "", "deployment": "", "deployment.resources": ""})
    if not is_obj:
        raise Invalid(f"{what}: the body must be a JSON object")
    version = _int(found, "version", what)
    if version not in (3, 4):
        raise Invalid(
            f"{what}: unsupported deployment version {version} (expected 3 or 4)",
            details={"field": "version"},
        )
    event, _ = found.get("deployment", ("missing", None))
    if event != "start_map":
        raise Invalid(f"{what}: `deployment` must be an object", details={"field": "deployment"})
    event, _ = found.get("deployment.resources", ("missing", None))
    if event not in ("missing", "null", "start_array"):
        raise Invalid(
            f"{what}: `deployment.resources` must be an array", details={"field": "deployment.resources"}
        )
    items = counts.get("deployment.resources.item", 0)
    if counts.get("deployment.resources.item.urn", 0) != items:
        raise Invalid(
            f"{what}: every resource needs a string `urn`", details={"field": "deployment.resources"}
        )
    if counts.get("deployment.resources.item.type", 0) != items:
        raise Invalid(
            f"{what}: every resource needs a string `type`", details={"field": "deployment.resources"}
        )
    return DocumentFacts(format_version=version, resource_count=items)


def inspect(tool: str, fh: IO[bytes]) -> DocumentFacts:
    if not fh.read(1):
        raise Invalid("body is empty: expected a state document")
    fh.seek(0)
    return inspect_terraform(fh) if tool == "terraform" else inspect_pulumi(fh)


# ---- parsed views (for diff, outputs, rollback): small and medium states only need these ----


def _depth_checked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    guard = bounded.JsonDepthGuard(what="the stored state")
    for chunk in chunks:
        guard.feed(chunk)
        yield chunk


def load_json(chunks: Iterable[bytes]) -> Any:
    buf = bytearray()
    for chunk in _depth_checked(chunks):
        buf += chunk
    return json.loads(buf)


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (for streaming parsers)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def load_object_streaming(chunks: Iterable[bytes]) -> dict[str, Any]:
    """Parse a JSON object from chunks without ever holding its text: the same result as
    `json.loads` for an object, at a fraction of the peak memory for large documents."""

    def checked(source: Iterable[bytes]) -> Iterator[bytes]:
        seen_start = False
        for chunk in source:
            if not seen_start and chunk.strip():
                if not chunk.lstrip().startswith(b"{"):
                    raise ValueError("the document is not a JSON object")
                seen_start = True
            yield chunk

    reader = io.BufferedReader(_ChunkReader(checked(_depth_checked(chunks))), buffer_size=READ_CHUNK)
    try:
        return dict(ijson.kvitems(reader, "", use_float=True))
    except bounded.TooDeep as exc:
        raise ValueError(exc.message) from exc
    except ijson.JSONError as exc:
        raise ValueError(str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error") from exc


def terraform_instances(doc: dict[str, Any]) -> dict[str, Any]:
    """Map each resource instance's full address to its attributes."""
    out: dict[str, Any] = {}
    for res in doc.get("resources") or []:
        base = f"{res.get('type')}.{res.get('name')}"
        if res.get("mode") == "data":
            base = "data." + base
        if res.get("module"):
            base = f"{res['module']}.{base}"
        for inst in res.get("instances") or []:
            key = inst.get("index_key")
            if key is None:
                addr = base
            elif isinstance(key, str):
                addr = f"{base}[{json.dumps(key)}]"
            else:
                addr = f"{base}[{key}]"
            if inst.get("deposed"):
                addr += f" (deposed {inst['deposed']})"
            out[addr] = inst.get("attributes", inst.get("attributes_flat"))
    return out


def pulumi_resources(doc: dict[str, Any]) -> dict[str, Any]:
    deployment = doc.get("deployment") or {}
    return {
        r["urn"]: {"inputs": r.get("inputs"), "outputs": r.get("outputs"), "id": r.get("id")}
        for r in deployment.get("resources") or []
    }


def resource_map(tool: str, doc: dict[str, Any]) -> dict[str, Any]:
    return terraform_instances(doc) if tool == "terraform" else pulumi_resources(doc)
