from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base


class ChannelLease(Base):
    """One receiver channel held by one acquisition, until released or expired.

    The worker recording the acquisition renews ``expires_at``; a worker that dies
    stops renewing, so its channels come free by themselves.
    """

    __tablename__ = "channel_leases"
    __table_args__ = (Index("ix_channel_leases_station_id", "station_id"),)

    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("acquisitions.task_id", ondelete="CASCADE"), primary_key=True
    )
    station_id: Mapped[str] = mapped_column(
        Text, ForeignKey("websdr_stations.id", ondelete="CASCADE"), primary_key=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
