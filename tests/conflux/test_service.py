"""Config center service functions on both databases: what GitOps calls, encryption at rest,
retention with the clock given as an argument."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.conflux import service
from xcloudflow.conflux.models import ConfluxVersion
from xcloudflow.conflux.schemas import ConfigPut, PolicyIn, PublishIn, RetentionPolicy, RuleIn
from xcloudflow.conflux.service import ConfigAddress
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Forbidden, Invalid
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import Settings

ADDRESS = ConfigAddress.parse("my-tenant/app-a/production/database.toml")


@pytest.fixture
def gitops(db: Database) -> Principal:
    """The synthetic principal the GitOps sync acts as."""
    with db.read() as session:
        org_id = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
    return Principal(
        user_id=0, user_name="gitops:repo", org_id=org_id, org_name="default", role="writer", token_id=0
    )


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return Keyring.from_settings(settings, create=False)


def _ctx(who: Principal) -> AuditContext:
    return AuditContext(actor=who.user_name, org_id=who.org_id)


def _publish(db: Database, keyring: Keyring, who: Principal, content: str, **body: object) -> int:
    with db.write() as session:
        out = service.publish(
            session=session,
            keyring=keyring,
            principal=who,
            ctx=_ctx(who),
            address=ADDRESS,
            body=PublishIn(content=content, **body),  # type: ignore[arg-type]
        )
    return out.version.number


def test_address_parsing() -> None:
    assert str(ADDRESS) == "my-tenant/app-a/production/database.toml"
    assert ADDRESS.scope == ("my-tenant", "app-a", "production")
    with pytest.raises(Invalid):
        ConfigAddress.parse("a/b/c")
    with pytest.raises(Invalid):
        ConfigAddress.parse("a/b/c/../x")
    with pytest.raises(Invalid):
        ConfigAddress("a", "b", "c", "x" * 129)


def test_gitops_calls(db: Database, keyring: Keyring, gitops: Principal) -> None:
    with db.write() as session:
        out, created = service.put_config(
            session=session,
            principal=gitops,
            ctx=_ctx(gitops),
            address=ADDRESS,
            body=ConfigPut(format="toml"),
        )
        assert created and out.created_by == "gitops:repo"
    with db.write() as session:
        _, created = service.put_config(
            session=session,
            principal=gitops,
            ctx=_ctx(gitops),
            address=ADDRESS,
            body=ConfigPut(format="toml"),
        )
        assert not created
    with db.read() as session:
        assert (
            service.latest_content(session=session, keyring=keyring, org_id=gitops.org_id, address=ADDRESS)
            is None
        )
    key = "c0ffee"
    assert (
        _publish(db, keyring, gitops, 'a = "1"\n', idempotency_key=key, source="gitops:abc", is_stable=True)
        == 1
    )
    assert (
        _publish(db, keyring, gitops, 'a = "1"\n', idempotency_key=key, source="gitops:abc", is_stable=True)
        == 1
    )
    with db.read() as session:
        got = service.latest_content(session=session, keyring=keyring, org_id=gitops.org_id, address=ADDRESS)
        assert got == (1, 'a = "1"\n')
        config = service.get_config(session=session, org_id=gitops.org_id, address=ADDRESS)
        assert config.latest_version == 1 and config.stable is not None and config.stable.number == 1
        # at rest the content is sealed: no plaintext in the row
        blob = session.scalar(select(ConfluxVersion.content))
        assert blob is not None and b'a = "1"' not in blob
    reader = Principal(
        user_id=9, user_name="rita", org_id=gitops.org_id, org_name="default", role="reader", token_id=9
    )
    with pytest.raises(Forbidden), db.write() as session:
        service.publish(
            session=session,
            keyring=keyring,
            principal=reader,
            ctx=_ctx(reader),
            address=ADDRESS,
            body=PublishIn(content="x = 1\n"),
        )


def test_retention_with_an_injected_clock(db: Database, keyring: Keyring, gitops: Principal) -> None:
    policy = RetentionPolicy.model_validate(
        {"strategy": "AND", "rules": [{"type": "count", "keep": 2}, {"type": "days", "keep": 30}]}
    )
    with db.write() as session:
        service.put_config(
            session=session,
            principal=gitops,
            ctx=_ctx(gitops),
            address=ADDRESS,
            body=ConfigPut(format="toml", retention=policy),
        )
    for n in range(1, 8):
        _publish(db, keyring, gitops, f"n = {n}\n", is_stable=(n == 2))
    with db.write() as session:  # version 3 is a canary: a rule names it
        service.put_policy(
            session=session,
            principal=gitops,
            ctx=_ctx(gitops),
            address=ADDRESS,
            body=PolicyIn(rules=[RuleIn(name="canary", priority=1, version=3, labels={"canary": "true"})]),
        )
    # Today every version is younger than 30 days: AND keeps them all.
    with db.write() as session:
        assert service.apply_retention(session=session, now=utcnow()) == []
    # 40 days later only the count rule keeps anything: the two newest, plus stable and canary.
    with db.write() as session:
        results = service.apply_retention(session=session, now=utcnow() + timedelta(days=40))
    assert [r.deleted for r in results] == [[1, 4, 5]]
    with db.read() as session:
        page = service.list_versions(session=session, org_id=gitops.org_id, address=ADDRESS)
        assert [v.number for v in page.items] == [7, 6, 3, 2]
        history = service.history(session=session, org_id=gitops.org_id, address=ADDRESS)
        assert history.effective.stable is not None and history.effective.stable.number == 2
        assert [r.version for r in history.effective.rules] == [3]
    # OR with only a days rule: everything old goes, but never stable, canary or the newest.
    with db.write() as session:
        service.put_config(
            session=session,
            principal=gitops,
            ctx=_ctx(gitops),
            address=ADDRESS,
            body=ConfigPut(
                format="toml",
                retention=RetentionPolicy.model_validate(
                    {"strategy": "OR", "rules": [{"type": "days", "keep": 1}]}
                ),
            ),
        )
    with db.write() as session:
        results = service.apply_retention(session=session, now=utcnow() + timedelta(days=2))
    assert [r.deleted for r in results] == [[6]]
    with db.read() as session:
        page = service.list_versions(session=session, org_id=gitops.org_id, address=ADDRESS)
        assert [v.number for v in page.items] == [7, 3, 2]
    # numbers are never reused after a deletion
    assert _publish(db, keyring, gitops, "n = 8\n") == 8
