"""uvicorn as `xcf server` runs it: a header-read timeout, a connection cap and keep-alive idling.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) and answers 503 past
`limit_concurrency`, but a connection that opens and then sends its request head slowly (or never)
is held forever: a thousand of them hold a thousand sockets. The protocols here close a connection
that has not completed its request head within `XCF_HTTP_HEADER_TIMEOUT_SECONDS` of opening (or of
the first byte of its next request), answering 408 first.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from xcloudflow.settings import Settings

_REQUEST_TIMEOUT = json.dumps(
    {
        "error": {
            "code": "request_timeout",
            "message": "the request head was not complete in time",
            "details": None,
        }
    }
).encode()
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_REQUEST_TIMEOUT)).encode() + b"\r\n\r\n" + _REQUEST_TIMEOUT
)
_from_env: float | None = None


def _env_timeout() -> float:
    global _from_env
    if _from_env is None:  # read once per process (worker processes get XCF_* from `xcf server`)
        _from_env = Settings().http_header_timeout_seconds
    return _from_env


class _HeadClock:
    """One connection's deadline for its request head."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.awaiting = True  # no request head yet, or the previous response is complete
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def start(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.arm(loop)

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.awaiting and self._timer is None:
            self._timer = loop.call_later(self.seconds, self._expire)

    def head_complete(self) -> None:
        self.awaiting = False
        self.stop()

    def next_request(self) -> None:
        self.awaiting = True

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if self.awaiting and transport is not None and not transport.is_closing():
            transport.write(_408)
            transport.close()


def _seconds(cls: type[Any]) -> float:
    configured: float | None = getattr(cls, "header_timeout", None)
    return configured if configured is not None else _env_timeout()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class _HeadTimeout(asyncio.Protocol):
    """The header-read timeout, for either of uvicorn's protocols (listed after it as a base): the
    protocol class says when a request head is complete."""

    header_timeout: float | None = None  # None: XCF_HTTP_HEADER_TIMEOUT_SECONDS
    loop: asyncio.AbstractEventLoop  # the uvicorn protocol's
    _head: _HeadClock

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head = _HeadClock(_seconds(type(self)))
        self._head.start(self.loop, transport)

    def on_response_complete(self) -> None:
        self._head.next_request()
        super().on_response_complete()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._head.stop()
        super().connection_lost(exc)


class H11HeadTimeout(_HeadTimeout, H11Protocol):
    """uvicorn's h11 protocol with the header-read timeout."""

    def data_received(self, data: bytes) -> None:
        self._head.arm(self.loop)
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # h11 parsed a request head: uvicorn made a new request cycle
            self._head.head_complete()


if HttpToolsProtocol is not None:

    class HttpToolsHeadTimeout(_HeadTimeout, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header-read timeout."""

        def data_received(self, data: bytes) -> None:
            self._head.arm(self.loop)
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._head.head_complete()
            super().on_headers_complete()


def protocol() -> type[asyncio.Protocol]:
    """The HTTP protocol class `xcf server` gives uvicorn: httptools when installed, else h11."""
    if HttpToolsProtocol is not None:
        return HttpToolsHeadTimeout
    return H11HeadTimeout  # pragma: no cover


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The connection limits of `xcf server` (each worker process applies them on its own)."""
    return {
        "http": protocol(),
        "limit_concurrency": settings.http_max_connections,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "proxy_headers": False,
    }
