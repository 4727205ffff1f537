"""Data keys, encryption at rest and master key rotation, against the real database."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import tf_state
from tests.state.test_backend_api import post_state
from xcloudflow.db import Database
from xcloudflow.errors import Invalid
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring
from xcloudflow.keys.models import OrgDataKey
from xcloudflow.settings import Settings
from xcloudflow.state.models import StateVersion


def test_database_alone_reveals_no_secret(admin: TestClient, db: Database) -> None:
    doc = tf_state(resources={"db": "p@ssw0rd-very-secret"})
    assert post_state(admin, doc).status_code == 200
    with db.read() as session:
        rows = session.execute(select(StateVersion.content)).scalars().all()
        keys_raw = session.execute(select(OrgDataKey.wrapped_key)).scalars().all()
    assert rows and all(b"p@ssw0rd" not in r and b"terraform_data" not in r for r in rows)
    assert keys_raw and all(len(k) == 12 + 32 + 16 for k in keys_raw)


def test_key_file_is_generated_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "d")
    ring = Keyring.from_settings(settings)
    mode = stat.S_IMODE(os.stat(settings.key_file).st_mode)
    assert mode == 0o600
    assert Keyring.from_settings(settings).current == ring.current


def test_bad_master_key_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid, match="32 bytes"):
        Keyring.from_settings(Settings(data_dir=tmp_path, encryption_key=base64.b64encode(b"short").decode()))
    with pytest.raises(Invalid, match="base64"):
        Keyring.from_settings(Settings(data_dir=tmp_path, encryption_key="!!!"))


def test_rotate_master_rewraps_and_old_content_still_reads(
    admin: TestClient, db: Database, settings: Settings
) -> None:
    assert post_state(admin, tf_state(serial=1)).status_code == 200
    before = admin.get("/terraform/state/net/prod").content
    old = Keyring.from_settings(settings)
    new_master = os.urandom(32)
    ring = Keyring(new_master, [old.current])
    with db.write() as session:
        assert keys.rotate_master(session=session, keyring=ring) == 1
        assert keys.master_key_usage(session=session) == {ring.current_id: 1}
    # A server that has only the new key reads the old state.
    only_new = Keyring(new_master)
    with db.read() as session:
        row = session.scalars(select(StateVersion)).one()
        key = keys.data_key(session=session, keyring=only_new, data_key_id=row.data_key_id)  # type: ignore[arg-type]
    assert len(key) == 32
    # And a server that has only the old key cannot unwrap it any more.
    with db.read() as session, pytest.raises(Invalid, match="master key"):
        keys.data_key(session=session, keyring=Keyring(old.current), data_key_id=row.data_key_id)  # type: ignore[arg-type]
    assert before.startswith(b"{")


def test_rotate_data_key_new_writes_use_new_version(
    admin: TestClient, db: Database, settings: Settings
) -> None:
    assert post_state(admin, tf_state(serial=1)).status_code == 200
    ring = Keyring.from_settings(settings)
    with db.write() as session:
        assert keys.rotate_data_key(session=session, keyring=ring, org_id=1) == 2
    assert post_state(admin, tf_state(serial=2)).status_code == 200
    with db.read() as session:
        used = session.scalars(select(StateVersion.data_key_id).order_by(StateVersion.version)).all()
    assert used[0] != used[1]
    v1 = admin.get("/api/v1/stacks/terraform/net/prod/versions/1/content")
    assert v1.status_code == 200 and b'"serial": 1' in v1.content
