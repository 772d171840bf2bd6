from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from heimdall.core.db import Base


class Measurement(Base):
    """What one receiver measured during one acquisition.

    The primary key includes ``timestamp`` because a TimescaleDB hypertable
    requires its time column in every unique index; the plain-table path keeps
    the same key so both deployments share one schema.
    """

    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_task_id", "task_id"),
        Index("ix_measurements_websdr_id_timestamp", "websdr_id", "timestamp"),
        Index("ix_measurements_frequency_mhz_timestamp", "frequency_mhz", "timestamp"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("acquisitions.task_id", ondelete="CASCADE"), nullable=False
    )
    websdr_id: Mapped[str] = mapped_column(
        Text, ForeignKey("websdr_stations.id", ondelete="RESTRICT"), nullable=False
    )
    frequency_mhz: Mapped[float] = mapped_column(Float, nullable=False)
    snr: Mapped[float] = mapped_column(Float, nullable=False)
    frequency_offset: Mapped[float] = mapped_column(Float, nullable=False)
    power_dbm: Mapped[float | None] = mapped_column(Float)
    noise_floor_dbm: Mapped[float | None] = mapped_column(Float)
    signal_power_dbfs: Mapped[float | None] = mapped_column(Float)
    noise_floor_dbfs: Mapped[float | None] = mapped_column(Float)
    occupied_bandwidth_hz: Mapped[float | None] = mapped_column(Float)
    sample_rate_hz: Mapped[float | None] = mapped_column(Float)
    sample_count: Mapped[int | None] = mapped_column(Integer)
    gps_locked: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    data_url: Mapped[str] = mapped_column(Text, nullable=False)
    meta_url: Mapped[str | None] = mapped_column(Text)
    #: The recording's SigMF metadata as written to ``meta_url``, when it is small (a
    #: live capture's; ``acquisition.stored.META_IN_ROW_MAX_BYTES``): the localization
    #: then reads one object per recording, not two. Deferred: listings never load it.
    sigmf_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB, deferred=True)
