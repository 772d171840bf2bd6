from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from heimdall.acquisition.schemas import AcquisitionStatus, MeasurementOut
from heimdall.core.bounds import NO_NUL
from heimdall.localization.schemas import LocalizationOut
from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState, Approval
from heimdall.training.schemas import KnownSourceOut


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)
    reviewer: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL)


class ReviewFields(BaseModel):
    """The operator's decision as stored on the acquisition (the latest one wins)."""

    approval: Approval
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_comment: str | None

    @classmethod
    def fields_of(cls, a: Acquisition) -> dict[str, Any]:
        return {
            "approval": Approval(a.approval),
            "reviewed_by": a.reviewed_by,
            "reviewed_at": a.reviewed_at,
            "review_comment": a.review_note,
        }


class ReviewOut(ReviewFields):
    task_id: uuid.UUID


class KnownSourceLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    known_source_id: uuid.UUID | None


class LocalizationSummary(BaseModel):
    status: str
    method: str | None
    latitude: float | None
    longitude: float | None
    semi_major_m: float | None
    semi_minor_m: float | None
    orientation_deg: float | None


class SessionItem(ReviewFields):
    task_id: uuid.UUID
    frequency_mhz: float
    duration_seconds: float
    status: AcquisitionState
    progress: float
    #: Receivers that delivered a measurement.
    websdr_count: int
    #: Receivers selected for the acquisition.
    stations: list[str]
    timestamp: datetime
    known_source_id: uuid.UUID | None
    known_source_name: str | None
    description: str | None
    localization: LocalizationSummary | None
    source: AcquisitionSource = AcquisitionSource.live


class SessionPage(BaseModel):
    items: list[SessionItem]
    total: int
    limit: int
    offset: int


class SessionDetail(AcquisitionStatus, ReviewFields):
    description: str | None
    known_source: KnownSourceOut | None
    measurements: list[MeasurementOut]
    localization: LocalizationOut | None
