from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from heimdall.core.bounds import (
    MAX_FREQUENCY_MHZ,
    MIN_DURATION_S,
    MIN_FREQUENCY_MHZ,
    NO_NUL,
    StationId,
)
from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState, Approval

MAX_DURATION_S = 300.0
MAX_WAIT_S = 3600.0
IDEMPOTENCY_KEY_MAX_LENGTH = 200


class AcquireRequest(BaseModel):
    # NaN and infinities are refused as such ("Input should be a finite number") before
    # the bounds are checked, whose message would be misleading for them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    frequency_mhz: float = Field(
        ge=MIN_FREQUENCY_MHZ,
        le=MAX_FREQUENCY_MHZ,
        description="Centre frequency in MHz, inside the coverage of every receiver asked",
    )
    duration_seconds: float = Field(
        ge=MIN_DURATION_S, le=MAX_DURATION_S, description="0.5 <= d <= 300"
    )
    description: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)
    stations: list[StationId] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Station ids, each once; default: all active",
        json_schema_extra={"uniqueItems": True},
    )
    max_wait_seconds: float | None = Field(
        default=None,
        ge=1,
        le=MAX_WAIT_S,
        description="Longest wait for a free channel on every receiver (default: the server's)",
    )
    known_source_id: uuid.UUID | None = Field(
        default=None, description="The known transmitter recorded (ground truth for training)"
    )

    @field_validator("stations")
    @classmethod
    def _distinct(cls, stations: list[str] | None) -> list[str] | None:
        if stations is not None and len(set(stations)) != len(stations):
            raise ValueError("station ids must not repeat")
        return stations


class AcquireAccepted(BaseModel):
    task_id: uuid.UUID
    state: AcquisitionState
    frequency_mhz: float
    duration_seconds: float
    stations: list[str]
    status_url: str
    deadline_at: datetime | None = None


class ReceiverErrorOut(BaseModel):
    station_id: str
    error: str


class AcquisitionStatus(BaseModel):
    task_id: uuid.UUID
    state: AcquisitionState
    progress: float = Field(ge=0, le=100)
    errors: list[ReceiverErrorOut]
    error_message: str | None
    result: dict[str, Any] | None
    frequency_mhz: float
    duration_seconds: float
    stations: list[str]
    known_source_id: uuid.UUID | None = None
    source: AcquisitionSource = Field(
        default=AcquisitionSource.live,
        description="live: recorded from the receivers; import: files recorded elsewhere",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None = Field(
        default=None, description="It ends (SUCCESS, FAILED or CANCELLED) by then at the latest"
    )
    queue_position: int | None = Field(
        default=None,
        description="While PENDING: 1 + acquisitions requested earlier that wait for "
        "one of the same receivers",
    )

    @classmethod
    def of(cls, a: Acquisition) -> AcquisitionStatus:
        return cls(
            task_id=a.task_id,
            state=a.state,
            progress=a.progress,
            errors=[ReceiverErrorOut(**e) for e in a.errors],
            error_message=a.error_message,
            result=a.result,
            frequency_mhz=a.frequency_mhz,
            duration_seconds=a.duration_seconds,
            stations=a.station_ids,
            known_source_id=a.known_source_id,
            source=AcquisitionSource(a.source),
            created_at=a.created_at,
            started_at=a.started_at,
            finished_at=a.finished_at,
            deadline_at=a.deadline_at,
        )


class CancelResponse(BaseModel):
    task_id: uuid.UUID
    state: AcquisitionState


class MeasurementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    task_id: uuid.UUID
    websdr_id: str
    frequency_mhz: float
    snr: float
    frequency_offset: float
    power_dbm: float | None
    noise_floor_dbm: float | None
    signal_power_dbfs: float | None
    noise_floor_dbfs: float | None
    occupied_bandwidth_hz: float | None
    sample_rate_hz: float | None
    sample_count: int | None
    gps_locked: bool
    timestamp: datetime
    data_url: str
    meta_url: str | None


class SessionOut(BaseModel):
    task_id: uuid.UUID
    frequency_mhz: float
    duration_seconds: float
    status: AcquisitionState
    websdr_count: int
    timestamp: datetime
    approval: Approval
    description: str | None
    source: AcquisitionSource = AcquisitionSource.live


class SpectrumOut(BaseModel):
    """One receiver's Welch power spectral density over its whole recording."""

    task_id: uuid.UUID
    station_id: str
    center_frequency_hz: float
    sample_rate_hz: float
    bin_width_hz: float
    segment_count: int
    frequency_offset_hz: list[float] = Field(description="bin centres from the tuned frequency")
    psd_dbfs_per_hz: list[float] = Field(description="10 log10 of the PSD in FS^2/Hz")
