"""Helpers for the engine tests: a recording log/cancel object and repository snapshots as .tar.gz."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import pytest


class RecordingIO:
    """Stands for the job's line to the server: keeps the logged lines, carries the cancel event."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lines: list[str] = []

    def log(self, text: str) -> None:
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def tar_gz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def recording() -> RecordingIO:
    return RecordingIO()
