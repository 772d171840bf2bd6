from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from heimdall.localization.estimate import ConfidenceEllipse


class LocalizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: uuid.UUID
    method: Literal["auto", "rss", "tdoa", "fused"] = "auto"
    recompute: bool = Field(default=False, description="Replace a stored result")


class LocalizationOut(BaseModel):
    task_id: uuid.UUID
    status: str
    method: str | None
    message: str | None
    latitude: float | None
    longitude: float | None
    ellipse: ConfidenceEllipse | None
    gdop: float | None
    receivers_used: int
    residuals: list[dict[str, Any]]
    calibration_version: str | None
    created_at: datetime
    surface_geojson: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = Field(
        default=None,
        description="receivers that fed the power part and the TDOA part, and those left out",
    )
