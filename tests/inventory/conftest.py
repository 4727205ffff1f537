"""Inventory fixtures: write states through the real API, then run the real consumer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from xcloudflow.db import Database
from xcloudflow.inventory import service as inventory
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import Settings


@pytest.fixture
def consume(db: Database, settings: Settings) -> Callable[[], int]:
    """Drain the outbox the way the server's consumer does; returns the events written."""
    keyring = Keyring.from_settings(settings, create=False)

    def run() -> int:
        total = 0
        with db.read() as session:
            heads = inventory.pending_stacks(session=session)
        for head in heads:
            with db.write() as session:
                total += inventory.consume_stack(session=session, keyring=keyring, head_id=head) or 0
        return total

    return run


@pytest.fixture
def put_state(admin: TestClient) -> Callable[..., None]:
    from tests.factories import body, md5_header

    def put(doc: object, *, tool: str = "terraform", project: str = "net", stack: str = "prod") -> None:
        data = body(doc)
        if tool == "terraform":
            resp = admin.post(
                f"/terraform/state/{project}/{stack}", content=data, headers={"Content-MD5": md5_header(data)}
            )
        else:
            resp = admin.put(f"/pulumi/state/{project}/{stack}", content=data)
        assert resp.status_code == 200, resp.text

    return put


@pytest.fixture
def settings_(settings: Settings) -> Settings:
    """The test settings under a name hypothesis' `settings` decorator does not shadow."""
    return settings
