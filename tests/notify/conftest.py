"""Notification fixtures: a real HTTP receiver (http.server in a thread) and helpers.

The receiver records every request (headers and exact body bytes) and answers with the statuses it is
told to, in order (then 200), so the tests check real signatures on real requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db import Database
from xcloudflow.iam import service as iam
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import Settings
from xcloudflow.workspaces import service as workspaces
from xcloudflow.workspaces.schemas import WorkspaceCreate

SECRET = "s3cret-hmac-key-do-not-leak"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Answers to give, in order: (status, body); once used up, 200 with `{"code": 0}`.
    answers: list[tuple[int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)

    def answer(self, *statuses: int, body: bytes = b"") -> None:
        with self.lock:
            self.answers.extend((s, body) for s in statuses)

    def next_answer(self) -> tuple[int, bytes]:
        with self.lock:
            return self.answers.pop(0) if self.answers else (200, b'{"code":0,"msg":"success"}')


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            status, answer = receiver.next_answer()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            receiver.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook/abc123"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def keyring(settings: Settings, db: Database) -> Keyring:
    return Keyring.from_settings(settings, create=False)


def make_workspace(db: Database, project: str, name: str) -> int:
    """A workspace made by the workspaces service, as the admin; returns its id."""
    with db.write() as session:
        who = iam.authenticate(session=session, token=ADMIN_TOKEN)
        out = workspaces.create_workspace(
            session=session,
            principal=who,
            ctx=AuditContext(actor=who.user_name, org_id=who.org_id),
            body=WorkspaceCreate(project=project, name=name),
        )
        return out.id


def default_org(db: Database) -> int:
    with db.read() as session:
        return iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
