from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base


class ModelActivation(Base):
    """One activation of a model version: the registry's history, read as a stack.

    Rolling back marks the newest activation not yet rolled back and re-activates the
    one below it (or none: the default calibration), so repeated rollbacks walk back
    through the versions in the order they were activated.
    """

    __tablename__ = "model_activations"
    __table_args__ = (Index("ix_model_activations_name_created_at", "name", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    model_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("models.id", ondelete="CASCADE"), nullable=False
    )
    # "manual" (the API), "auto" (a training job that beat the active model).
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    rolled_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
