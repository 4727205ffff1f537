"""The server's logging configuration applied to real loggers: UTC timestamps, the quiet long polls
shown again at debug, nothing else ever dropped (the process-level check is tests/e2e/test_server_log.py)."""

from __future__ import annotations

import io
import logging
import logging.config
import re
from collections.abc import Iterator

import pytest

from xcloudflow.server import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A buffer the configuration writes to; every logger it configures is restored afterwards, so
    the other tests (caplog) see the logging they expect."""
    buffer = io.StringIO()
    names = ["", *logs.config()["loggers"]]
    saved = [logging.getLogger(n) for n in names]
    states = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in saved]
    yield buffer
    for lg, (handlers, level, propagate, disabled) in zip(saved, states, strict=True):
        lg.handlers, lg.propagate, lg.disabled = handlers, propagate, disabled
        lg.setLevel(level)


def _apply(level: str, stream: io.StringIO) -> None:
    config = logs.config(level)
    for handler in config["handlers"].values():
        handler.pop("stream")
        handler["stream"] = stream
    config["root"] = {"level": "WARNING", "handlers": []}
    logging.config.dictConfig(config)


def _access(path: str, status: int, method: str = "GET") -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", method, path, "1.1", status
    )


def test_quiet_polls_and_what_stays(stream: io.StringIO) -> None:
    _apply("info", stream)
    _access("/api/agent/v1/jobs/next?wait=20", 204)
    _access("/api/agent/v1/heartbeat", 200, "POST")
    _access("/api/agent/v1/jobs/0f4c/cancel", 200)
    _access("/api/v1/conflux/watch?tenant=t&application=a&environment=e", 304)
    _access("/api/agent/v1/jobs/next?wait=20", 503)  # failures stay
    _access("/api/v1/conflux/watch?tenant=-", 400)
    _access("/api/agent/v1/jobs/0f4c/finish", 200, "POST")  # the job lifecycle stays
    _access("/api/agent/v1/jobs/next/other", 200)  # not a poll route
    _access("/api/v1/stacks", 200)
    logging.getLogger("xcloudflow.server").info("hello")
    lines = stream.getvalue().splitlines()
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", line) for line in lines), lines
    assert len(lines) == 6, lines
    assert '"GET /api/agent/v1/jobs/next?wait=20 HTTP/1.1" 503' in lines[0]
    assert lines[-1].endswith("INFO    xcloudflow.server: hello")


def test_debug_logs_every_request(stream: io.StringIO) -> None:
    _apply("debug", stream)
    _access("/api/agent/v1/jobs/next?wait=20", 204)
    _access("/api/v1/conflux/watch?tenant=t", 304)
    assert len(stream.getvalue().splitlines()) == 2
