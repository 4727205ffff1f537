"""The one log line format of XCloudFlow's processes (`xcf server`, its embedded agent, `xcf agent`):

    2026-12-08T01:50:00.123Z INFO    xcloudflow.server: xcf server on http://127.0.0.1:8080 ...

A UTC ISO 8601 timestamp with milliseconds, the level, the logger and the message. Stdlib only, so the
agent (which may not import the server) and the server share it.
"""

from __future__ import annotations

import logging
import time

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def utc(seconds: float | None = None) -> time.struct_time:
    return time.gmtime(seconds)


class UTCFormatter(logging.Formatter):
    """ISO 8601 UTC timestamps with milliseconds: `2026-12-08T01:50:00.123Z`."""

    converter = staticmethod(utc)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


def configure(level: int = logging.INFO) -> None:
    """Log to stderr in FORMAT (for processes that have no other logging configuration)."""
    handler = logging.StreamHandler()
    handler.setFormatter(UTCFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    # httpx logs every request at info: an agent's long polls would be a line each, every few seconds
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
