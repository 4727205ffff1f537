"""An agent that starts before its server (the embedded agent always does: it starts while the server
is still starting) says so once at info and retries quietly until a real server answers; once it
has reached the server, losing it again is a warning as before."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port, serve_app
from xcloudflow import __version__
from xcloudflow.agent.client import AgentClient, Halted, Registration
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("xcloudflow.agent") and r.levelno == level]


def test_an_agent_started_before_its_server_waits_quietly(
    admin: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert admin.post("/api/v1/agent-pools", json={"name": "early"}).status_code == 201
    token = admin.post("/api/v1/agent-pools/early/tokens", json={"name": "t"}).json()["token"]
    caplog.set_level(logging.DEBUG, logger="xcloudflow.agent")
    port = free_port()
    halt = threading.Event()
    client = AgentClient(f"http://127.0.0.1:{port}", halt=halt, max_backoff=0.2)
    registered: list[Registration] = []
    thread = threading.Thread(
        target=lambda: registered.append(
            client.register(
                token, name="early", hostname="h", version=__version__, capacity=1, kinds=["noop"], pool=None
            )
        ),
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(_records(caplog, logging.DEBUG)) < 3:  # refused at least four times
            assert time.monotonic() < deadline and thread.is_alive(), caplog.text
            time.sleep(0.05)
        base, stop = serve_app(create_app(settings, maintenance=False), port=port)
        try:
            thread.join(timeout=30)
            assert registered and registered[0].pool == "early"
            [said] = _records(caplog, logging.INFO)
            assert said.getMessage().startswith(
                f"agent: waiting for the server at {base} to accept connections"
            )
            assert "ConnectError" not in caplog.text
            assert _records(caplog, logging.WARNING) == []
        finally:
            stop()
        # Reached once: the server going away is a warning again (the agent of a running platform).
        caplog.clear()
        halt_later = threading.Timer(1.0, halt.set)
        halt_later.start()
        with pytest.raises(Halted):
            client.next_job(registered[0].token, wait=0)
        assert _records(caplog, logging.WARNING), caplog.text
    finally:
        halt.set()
        client.close()
