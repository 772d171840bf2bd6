from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, Float, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base


class WebSDRStation(Base):
    """A receiver of the network (simulated or real)."""

    __tablename__ = "websdr_stations"
    __table_args__ = (
        CheckConstraint("channels >= 1", name="channels"),
        CheckConstraint("source IN ('registry', 'imported')", name="source"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    protocol: Mapped[str] = mapped_column(Text, nullable=False)
    latitude: Mapped[float] = mapped_column(Float, nullable=False)
    longitude: Mapped[float] = mapped_column(Float, nullable=False)
    altitude_m: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    # [[low_mhz, high_mhz], ...]: what the receiver can tune.
    frequency_ranges_mhz: Mapped[list[list[float]]] = mapped_column(JSONB, nullable=False)
    # Receiver channels Heimdall may hold at once (a KiwiSDR has 4-14, shared with others).
    channels: Mapped[int] = mapped_column(Integer, nullable=False, server_default="4")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # registry: seeded from the registry file; imported: the receiver of an imported
    # recording, created inactive (heimdall.imports).
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default="registry")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    def covers(self, frequency_mhz: float) -> bool:
        return any(low <= frequency_mhz <= high for low, high in self.frequency_ranges_mhz)
