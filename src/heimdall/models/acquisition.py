from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base


class AcquisitionState(StrEnum):
    PENDING = "PENDING"
    PROGRESS = "PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (self.SUCCESS, self.FAILED, self.CANCELLED)


class AcquisitionSource(StrEnum):
    """Where an acquisition's recordings come from."""

    live = "live"  # recorded from the receivers
    imported = "import"  # files recorded elsewhere, uploaded (heimdall.imports)


class Approval(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


def _sql_in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Acquisition(Base):
    """One request to record from the network; the record of its state."""

    __tablename__ = "acquisitions"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_in(AcquisitionState)})", name="status"),
        CheckConstraint(f"approval IN ({_sql_in(Approval)})", name="approval"),
        CheckConstraint(f"source IN ({_sql_in(AcquisitionSource)})", name="source"),
        # An imported recording may be longer than a live one (up to a day).
        CheckConstraint(
            "duration_seconds > 0 AND (duration_seconds <= 300 "
            "OR (source = 'import' AND duration_seconds <= 86400))",
            name="duration",
        ),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
        Index("ix_acquisitions_created_at", "created_at"),
        Index("ix_acquisitions_status", "status"),
        # Training selects approved sessions of known sources; deleting a source nulls links.
        Index("ix_acquisitions_known_source_id", "known_source_id"),
        Index("uq_acquisitions_idempotency_key", "idempotency_key", unique=True),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    frequency_mhz: Mapped[float] = mapped_column(Float, nullable=False)
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    station_ids: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="PENDING")
    progress: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSONB, nullable=False, server_default="[]")
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    approval: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    # The reviewer's comment (the API calls it review_comment).
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(Text)
    known_source_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("known_sources.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # --- scheduling and recovery (docs/decisions.md, "Acquisition at scale") ---
    # The latest time it may finish: waiting for channels, recording and storing included.
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The task attempt working on it, and until when that claim holds without renewal.
    holder: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Objects under its prefix may remain (cancelled or failed before they were removed).
    cleanup_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default="live")

    @property
    def state(self) -> AcquisitionState:
        return AcquisitionState(self.status)
