from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from heimdall.localization.estimate import ConfidenceEllipse
from heimdall.models import Localization


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
    #: The registry model whose calibration was used; None for the default calibration.
    model_id: uuid.UUID | None = None
    created_at: datetime
    surface_geojson: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = Field(
        default=None,
        description="receivers that fed the power part and the TDOA part, and those left out",
    )
    propagation_model: str | None = Field(
        default=None,
        description="line_of_sight (VHF and up) or ground_wave (LF/MF/HF); None for "
        "results stored before it was recorded",
    )


def to_out(localization: Localization, *, with_surface: bool) -> LocalizationOut:
    ellipse = None
    if localization.semi_major_m is not None and localization.semi_minor_m is not None:
        ellipse = ConfidenceEllipse(
            semi_major_m=localization.semi_major_m,
            semi_minor_m=localization.semi_minor_m,
            orientation_deg=localization.orientation_deg or 0.0,
        )
    detail = localization.detail or {}
    return LocalizationOut(
        task_id=localization.task_id,
        status=localization.status,
        method=localization.method,
        message=localization.message,
        latitude=localization.latitude,
        longitude=localization.longitude,
        ellipse=ellipse,
        gdop=localization.gdop,
        receivers_used=localization.receivers_used,
        residuals=(localization.residuals or {}).get("items", []),
        calibration_version=detail.get("calibration_version"),
        model_id=localization.model_id,
        created_at=localization.created_at,
        surface_geojson=localization.surface_geojson if with_surface else None,
        inputs=detail.get("inputs"),
        propagation_model=detail.get("propagation_model"),
    )
