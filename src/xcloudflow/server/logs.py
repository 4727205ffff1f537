"""How `xcf server` logs: one line per event on stderr, each starting with a UTC timestamp.

uvicorn's default configuration prints `INFO:     ...` without a time and leaves XCloudFlow's own
loggers without a handler (so their info lines were lost and their warnings printed bare). This
module is the one logging configuration of the server process, handed to uvicorn as `log_config`
(worker processes get it too) and usable by anything the server starts:

    2026-12-08T01:50:00.123Z INFO    xcloudflow.server: xcf server on http://127.0.0.1:8080 ...
    2026-12-08T01:50:01.456Z INFO    uvicorn.access: 127.0.0.1:53086 - "GET /api/v1/stacks HTTP/1.1" 200

The access log leaves out the successful requests agents and clients repeat all the time: job long
polls, heartbeats, cancel checks and log uploads of the agent API, and Conflux watch long polls
(`QUIET_REQUESTS`). Their failures (status 400 and above) are kept, and at XCF_LOG_LEVEL=debug
everything is logged. It must never drop any other record.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

from uvicorn.logging import AccessFormatter

from xcloudflow.logformat import FORMAT, UTCFormatter, utc

ACCESS_FORMAT = '%(asctime)s %(levelname)-7s %(name)s: %(client_addr)s - "%(request_line)s" %(status_code)s'

# (method, path) of requests repeated by design; matched on the path without its query string.
QUIET_REQUESTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GET", re.compile(r"^/api/agent/v1/jobs/next$")),
    ("POST", re.compile(r"^/api/agent/v1/heartbeat$")),
    ("GET", re.compile(r"^/api/agent/v1/jobs/[^/]+/cancel$")),
    ("POST", re.compile(r"^/api/agent/v1/jobs/[^/]+/logs$")),
    ("GET", re.compile(r"^/api/v1/conflux/watch$")),
)


class UTCAccessFormatter(AccessFormatter):
    converter = staticmethod(utc)
    default_time_format = UTCFormatter.default_time_format
    default_msec_format = UTCFormatter.default_msec_format

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt=fmt, datefmt=datefmt, use_colors=False)


class QuietPolls(logging.Filter):
    """Drops uvicorn access records of successful QUIET_REQUESTS unless the logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True  # not uvicorn's access record: never dropped
        _client, method, full_path, _version, status = args
        if not isinstance(status, int) or status >= 400:
            return True
        if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return True
        path = str(full_path).split("?", 1)[0]
        return not any(method == m and pattern.match(path) for m, pattern in QUIET_REQUESTS)


def config(level: str = "info") -> dict[str, Any]:
    """The `logging.config.dictConfig` (and uvicorn `log_config`) of the server."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": f"{__name__}.UTCFormatter", "fmt": FORMAT},
            "access": {"()": f"{__name__}.UTCAccessFormatter", "fmt": ACCESS_FORMAT},
        },
        "filters": {"quiet_polls": {"()": f"{__name__}.QuietPolls"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["quiet_polls"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            "xcloudflow": {"handlers": ["default"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def configure(level: str = "info") -> None:
    """Apply `config(level)` to this process (`xcf server` before uvicorn starts, child processes)."""
    logging.config.dictConfig(config(level))
