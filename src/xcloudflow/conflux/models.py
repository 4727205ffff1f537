"""Tables of the config center: environments, configs, versions, releases, policy rules, publish
requests (idempotency) and change notifications (what watchers wait for).

Versions are immutable and their content is sealed (encrypted); nothing here holds plaintext. A
release row is kept for every stable change even after retention deleted the version it named, so
the history of what was stable never loses an entry.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Blob, Json, UTCDateTime, utcnow

FORMATS = ("json", "yaml", "toml", "properties", "ini", "text")
NOTIFICATION_KINDS = ("publish", "release", "policy", "config", "delete")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ConfluxEnvironment(Base):
    """One (tenant, application, environment) of an organization, made with its first config.

    Its row is locked by every transaction that adds a notification in it, so notification ids in one
    environment commit in increasing order and a watcher's `since` never skips a slower transaction.
    """

    __tablename__ = "conflux_environments"
    __table_args__ = (UniqueConstraint("org_id", "tenant", "application", "environment"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128))
    application: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfluxConfig(Base):
    __tablename__ = "conflux_configs"
    __table_args__ = (
        UniqueConstraint("org_id", "tenant", "application", "environment", "name"),
        CheckConstraint(_in("format", FORMATS), name="format"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("conflux_environments.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128))
    application: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    format: Mapped[str] = mapped_column(String(16))
    schema_text: Mapped[str | None] = mapped_column(Text)
    # {"strategy": "AND"|"OR", "rules": [{"type": "count"|"days", "keep": N}]}
    retention: Mapped[dict[str, Any] | None] = mapped_column(Json)
    description: Mapped[str | None] = mapped_column(Text)
    # The last version number handed out (numbers are never reused); 0 before the first publish.
    version_seq: Mapped[int] = mapped_column(Integer, default=0)
    stable_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    policy_revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfluxVersion(Base):
    __tablename__ = "conflux_versions"
    __table_args__ = (UniqueConstraint("config_id", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    config_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conflux_configs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 hex of the UTF-8 content
    size: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(128))  # api, terraform, gitops:<commit>, ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("org_data_keys.id"))
    content: Mapped[bytes] = mapped_column(Blob, deferred=True)


class ConfluxRelease(Base):
    """Every change of the stable version: who, when, why. Outlives the version it names."""

    __tablename__ = "conflux_releases"
    __table_args__ = (Index("ix_conflux_releases_config", "config_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    config_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conflux_configs.id", ondelete="CASCADE"))
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer)
    released_by: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)


class ConfluxRule(Base):
    """One rule of a config's release policy. The version it names cannot be deleted while it exists."""

    __tablename__ = "conflux_rules"
    __table_args__ = (UniqueConstraint("config_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    config_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conflux_configs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    priority: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conflux_versions.id"), index=True)
    labels: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    percentage: Mapped[int | None] = mapped_column(Integer)


class ConfluxPublishRequest(Base):
    """The first answer to a publish with an idempotency key, replayed to retries of the same request."""

    __tablename__ = "conflux_publish_requests"

    config_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conflux_configs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfluxNotification(Base):
    """A change watchers may care about; ids increase in commit order within an environment."""

    __tablename__ = "conflux_notifications"
    __table_args__ = (
        Index("ix_conflux_notifications_env", "environment_id", "id"),
        Index("ix_conflux_notifications_created", "created_at"),
        CheckConstraint(_in("kind", NOTIFICATION_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("conflux_environments.id", ondelete="CASCADE"))
    config_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # no FK: a deleted config's notice stays
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
