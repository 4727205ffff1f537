"""What a request may carry, checked at the edge before a route (or FastAPI's body parser) sees it.

- Body caps per route (`body_cap`): counted while the body streams in (`CountingReceive`), with the
  Content-Length checked up front. Past the cap the next `receive()` raises `BodyTooLarge`, a 413
  that FastAPI's body reader passes through and the error handlers render as JSON.
- Values no database column can hold: NUL bytes in the path or a query parameter
  (`target_problem`), NUL characters and lone UTF-16 surrogates in JSON strings (`json_problem`).
  PostgreSQL refuses NUL in text, and a lone surrogate cannot be encoded to UTF-8 at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope

from xcloudflow.settings import Settings

_CODE_VERSIONS = re.compile(r"^/api/v1/workspaces/[^/]+/[^/]+/code-versions/?$")
_ARTIFACT = re.compile(r"^/api/agent/v1/jobs/[^/]+/artifacts/[^/]+$")
_WEBHOOK = re.compile(r"^/api/v1/gitops/webhook/[^/]+$")
# A JSON escape that may stand for a NUL or a surrogate; only bodies holding one are parsed here.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


@dataclass(frozen=True)
class BodyCap:
    limit: int
    setting: str
    # Whether the body is JSON the app parses whole (then it is checked here for NUL and surrogates);
    # state, code archives and artifacts stream through untouched.
    parsed: bool


class BodyTooLarge(HTTPException):
    def __init__(self, cap: BodyCap) -> None:
        super().__init__(
            413, f"the request body is larger than this route's limit of {cap.limit} bytes ({cap.setting})"
        )


def is_webhook(path: str) -> bool:
    """The GitOps webhook: authenticated by the HMAC signature of its body, not by a token."""
    return _WEBHOOK.match(path) is not None


def body_cap(scope: Scope, settings: Settings) -> BodyCap:
    path: str = scope["path"]
    if path.startswith(("/terraform/", "/pulumi/")):
        return BodyCap(settings.state_max_bytes, "XCF_STATE_MAX_BYTES", parsed=False)
    if _CODE_VERSIONS.match(path):
        from xcloudflow.workspaces.api import workspace_settings

        limit = workspace_settings(Request(scope)).workspace_code_max_bytes
        return BodyCap(limit, "XCF_WORKSPACE_CODE_MAX_BYTES", parsed=False)
    if _ARTIFACT.match(path):
        jobs = getattr(scope["app"].state, "jobs", None)
        limit = jobs.settings.job_artifact_max_bytes if jobs is not None else settings.http_max_document_bytes
        return BodyCap(limit, "XCF_JOB_ARTIFACT_MAX_BYTES", parsed=False)
    if path.startswith(("/api/agent/", "/api/v1/conflux/")):
        return BodyCap(settings.http_max_document_bytes, "XCF_HTTP_MAX_DOCUMENT_BYTES", parsed=True)
    return BodyCap(settings.http_max_body_bytes, "XCF_HTTP_MAX_BODY_BYTES", parsed=True)


def declared_length(scope: Scope) -> int | None:
    """The Content-Length, None without one; ValueError when it is not a number."""
    for key, value in scope.get("headers") or ():
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit():
                raise ValueError(text)
            return int(text)
    return None


def has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or ())
    if b"transfer-encoding" in headers:
        return True
    length = headers.get(b"content-length", b"0").strip()
    return length not in (b"", b"0")


class CountingReceive:
    """`receive` that counts the body and raises BodyTooLarge past the cap, before buffering more."""

    def __init__(self, receive: Receive, cap: BodyCap) -> None:
        self._receive = receive
        self._cap = cap
        self.size = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self._cap.limit:
                raise BodyTooLarge(self._cap)
        return message


async def read_all(receive: CountingReceive) -> tuple[bytes, list[Message]]:
    """The whole (capped) body, and the messages to replay to the app."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the app see it
            return b"".join(parts), [message]
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(parts)
            return body, [{"type": "http.request", "body": body, "more_body": False}]


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


def _bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character, which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate (invalid Unicode), which cannot be stored"
    return None


def _shown(text: str) -> str:
    """`text` safe to put in an answer: NUL and surrogates as escapes."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def target_problem(scope: Scope) -> Problem | None:
    """NUL in the path or in a query parameter's name or value (they arrive percent-encoded)."""
    if "\x00" in scope["path"]:
        return Problem("path", "the path contains a NUL byte (%00), which cannot be stored")
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" not in query and "\x00" not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        for text in (name, value):
            if "\x00" in text:
                return Problem(f"query.{_shown(name)}", "contains a NUL byte (%00), which cannot be stored")
    return None


def json_problem(body: bytes) -> Problem | None:
    """The first string (key or value) of a JSON body that no database can hold, by its location.

    Cheap for ordinary bodies: they are parsed here only when they hold a `\\u0000` or
    `\\ud800`-`\\udfff` escape. Bodies that are not valid JSON are left to the app to refuse."""
    if _SUSPECT_ESCAPE.search(body) is None:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[str, Any]] = [("body", document)]
    while stack:  # iterative: deep documents are another check's business, not a RecursionError here
        where, value = stack.pop()
        if isinstance(value, str):
            reason = _bad_text(value)
            if reason:
                return Problem(where, reason)
        elif isinstance(value, dict):
            for key, item in value.items():
                reason = _bad_text(key)
                if reason:
                    return Problem(f"{where}.{_shown(key)}", "the key " + reason)
                stack.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}", item) for i, item in enumerate(value))
    return None
