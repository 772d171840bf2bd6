from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base
from heimdall.models.acquisition import AcquisitionState

# A job goes through the same states as an acquisition, with the same meaning.
JobState = AcquisitionState


class TrainingSession(Base):
    """One calibration-fitting job over approved sessions of known sources; its record of state."""

    __tablename__ = "training_sessions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('PENDING', 'PROGRESS', 'SUCCESS', 'FAILED', 'CANCELLED')", name="status"
        ),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
        Index("ix_training_sessions_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="PENDING")
    # The job's request: band, time window, folds, activation policy.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    progress: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # models.training_session_id points back here: use_alter breaks the cycle for DDL order.
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("models.id", ondelete="SET NULL", use_alter=True)
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def state(self) -> JobState:
        return JobState(self.status)
