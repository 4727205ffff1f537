"""Connections against a real uvicorn with `xcf server`'s options: a connection that does not finish
its request head in time is closed (408), however many there are; the connection cap answers 503."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TEST_KEY
from tests.server.edge_helpers import serve, wait_closed
from xcloudflow.server.app import create_app, prepare
from xcloudflow.server.http import H11HeadTimeout, HttpToolsHeadTimeout, uvicorn_options
from xcloudflow.settings import Settings

TIMEOUT = 1.0
MARGIN = 15.0  # generous: the machine is shared; the attack held connections for good
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "


class QuickHttpTools(HttpToolsHeadTimeout):
    header_timeout = TIMEOUT


class QuickH11(H11HeadTimeout):
    header_timeout = TIMEOUT


@pytest.fixture
def edge_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    shutil.copy(sqlite_template, tmp_path / "xcf.db")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'xcf.db'}",
        bootstrap_token=ADMIN_TOKEN,
        encryption_key=TEST_KEY,
        http_max_connections=20,
    )
    prepare(settings)
    return settings


@pytest.fixture(params=[QuickHttpTools, QuickH11], ids=["httptools", "h11"])
def server(request: pytest.FixtureRequest, edge_settings: Settings) -> Iterator[int]:
    options = {**uvicorn_options(edge_settings), "http": request.param, "limit_concurrency": None}
    port, stop = serve(create_app(edge_settings, maintenance=False), **options)
    yield port
    stop()


def _connect(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def test_connections_that_never_finish_their_head_are_closed(server: int) -> None:
    socks = [_connect(server, PARTIAL if i % 2 else b"") for i in range(400)]  # half send nothing at all
    try:
        # meanwhile an ordinary client is served
        assert httpx.get(f"http://127.0.0.1:{server}/healthz", timeout=10).status_code == 200
        still_open, answers = wait_closed(socks, TIMEOUT + MARGIN)
        assert not still_open, f"{len(still_open)} of {len(socks)} connections still open"
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers if a)
    finally:
        for sock in socks:
            sock.close()


def test_the_timeout_restarts_with_each_request_on_a_kept_alive_connection(server: int) -> None:
    sock = _connect(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        answer = b""
        while b'"ok"' not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        sock.sendall(PARTIAL)  # the next request stalls in its head
        still_open, answers = wait_closed([sock], TIMEOUT + MARGIN)
        assert not still_open and answers[0].startswith(b"HTTP/1.1 408 ")
    finally:
        sock.close()


def test_a_complete_head_is_not_cut_while_its_body_is_slow(server: int) -> None:
    body = b'{"name": "slow", "role": "reader"}'
    head = (
        f"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = _connect(server, head)
    try:
        still_open, _ = wait_closed([sock], TIMEOUT * 2)  # past the head timeout: nothing happens
        assert still_open == [sock]
        sock.sendall(body)
        answer = b""
        while b"\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 201 ")
    finally:
        sock.close()


def test_the_connection_cap_answers_503_past_it(edge_settings: Settings) -> None:
    port, stop = serve(
        create_app(edge_settings, maintenance=False),
        **{**uvicorn_options(edge_settings), "http": QuickHttpTools},
    )
    socks = [_connect(port, PARTIAL) for _ in range(edge_settings.http_max_connections)]
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 503
        still_open, _ = wait_closed(socks, TIMEOUT + MARGIN)  # the stalled ones time out ...
        assert not still_open
        assert (
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        )  # ... freeing room
    finally:
        for sock in socks:
            sock.close()
        stop()


def test_xcf_server_options(edge_settings: Settings) -> None:
    options = uvicorn_options(edge_settings)
    assert options["limit_concurrency"] == 20
    assert options["timeout_keep_alive"] == edge_settings.http_keep_alive_seconds
    assert issubclass(options["http"], HttpToolsHeadTimeout)
    assert options["http"].header_timeout is None  # XCF_HTTP_HEADER_TIMEOUT_SECONDS, read in each worker
