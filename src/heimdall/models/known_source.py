from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Float, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base


class KnownSource(Base):
    """A transmitter whose position is known: ground truth for calibration."""

    __tablename__ = "known_sources"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    latitude: Mapped[float] = mapped_column(Float, nullable=False)
    longitude: Mapped[float] = mapped_column(Float, nullable=False)
    altitude_m: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    frequency_mhz: Mapped[float | None] = mapped_column(Float)
    eirp_dbm: Mapped[float | None] = mapped_column(Float)
    modulation: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
