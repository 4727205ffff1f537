"""Bootstrap rules."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN
from xcloudflow.db import Database
from xcloudflow.errors import Invalid, Unauthorized
from xcloudflow.iam import service as iam


def test_bootstrap_runs_once(db: Database) -> None:
    with db.write() as session:
        assert iam.bootstrap(session=session, token="xcf_another_token_123456") is None
    with db.read() as session:
        assert iam.authenticate(session=session, token=ADMIN_TOKEN).role == "admin"
        with pytest.raises(Unauthorized):
            iam.authenticate(session=session, token="xcf_another_token_123456")


def test_bootstrap_generates_token_when_none_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from xcloudflow.db import migrate

    fresh = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate.upgrade(fresh)
    with fresh.write() as session:
        token = iam.bootstrap(session=session, token=None)
    assert token is not None and token.startswith("xcf_")
    with fresh.read() as session:
        assert iam.authenticate(session=session, token=token).user_name == "admin"
    fresh.dispose()


def test_bootstrap_refuses_a_short_token(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from xcloudflow.db import migrate

    fresh = Database(f"sqlite:///{tmp_path / 'short.db'}")
    migrate.upgrade(fresh)
    with pytest.raises(Invalid, match="at least 16"), fresh.write() as session:
        iam.bootstrap(session=session, token="short")
    with fresh.read() as session:
        assert session.scalars(iam.select(iam.User)).first() is None  # rolled back whole
    fresh.dispose()
