"""The secrets table: one row per named secret; all its values sealed together in one blob."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Blob, Json, UTCDateTime, utcnow


class Secret(Base):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    # The key names in clear (listing them must not need the key); the values only inside `sealed`.
    keys: Mapped[list[str]] = mapped_column(Json)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("org_data_keys.id"))
    sealed: Mapped[bytes] = mapped_column(Blob)  # JSON {key: value}, AES-GCM, AAD names the row
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128))
