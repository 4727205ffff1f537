"""Helpers for the HTTP edge tests: this process's memory, and raw HTTP over a socket."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit


def json_list_chunks(total: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """`[{},{},...]` of about `total` bytes, made while it is sent (the client holds one chunk)."""
    piece = b"{}," * (chunk // 3)
    yield b"["
    sent = 1
    while sent + len(piece) < total:
        yield piece
        sent += len(piece)
    yield b"{}]"


def send_chunked(base: str, method: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> int:
    """Send a chunked request over a raw socket and return the answer's status. The server may answer
    (and close) before the body is all sent: what it answered is what counts."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nTransfer-Encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall((head + "\r\n").encode())
        try:
            for chunk in chunks:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early, as it should
        answer = b""
        while b"\r\n" not in answer:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def serve(app: object, **options: object) -> tuple[int, Callable[[], None]]:
    """`app` under a real uvicorn (in a thread) with these Config options; its port and a stop function."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return port, stop


def wait_closed(socks: list[socket.socket], within: float) -> tuple[list[socket.socket], list[bytes]]:
    """Poll until the server closed each socket (reading to EOF); the ones still open after `within`
    seconds, and what the closed ones received."""
    received: dict[socket.socket, bytes] = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as sel:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    received[s] += data
                else:
                    sel.unregister(s)
                    open_.discard(s)
    return [s for s in socks if s in open_], [received[s] for s in socks if s not in open_]
