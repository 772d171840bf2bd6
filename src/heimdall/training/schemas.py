from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from heimdall.core.bounds import MAX_FREQUENCY_MHZ, NO_NUL
from heimdall.models import JobState

# --- known sources --------------------------------------------------------------


class KnownSourceFields(BaseModel):
    """Every known-source field; optional here so that PATCH can name any subset."""

    # NaN and infinities are refused as such, before the bounds (whose message would
    # be misleading for them).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    altitude_m: float | None = Field(default=None, ge=-500, le=10_000)
    frequency_mhz: float | None = Field(default=None, gt=0, le=MAX_FREQUENCY_MHZ)
    eirp_dbm: float | None = Field(default=None, ge=-50, le=100)
    modulation: str | None = Field(default=None, max_length=100, pattern=NO_NUL)
    description: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)


class KnownSourceCreate(KnownSourceFields):
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = Field(default=0.0, ge=-500, le=10_000)
    frequency_mhz: float = Field(gt=0, le=MAX_FREQUENCY_MHZ)


class KnownSourceUpdate(KnownSourceFields):
    # Omitted: unchanged; null is refused (a known source always has these), so the
    # schema does not offer it.
    name: (
        Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] | (SkipJsonSchema[None])
    ) = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | SkipJsonSchema[None] = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | SkipJsonSchema[None] = None
    altitude_m: Annotated[float, Field(ge=-500, le=10_000)] | SkipJsonSchema[None] = None
    frequency_mhz: Annotated[float, Field(gt=0, le=MAX_FREQUENCY_MHZ)] | (SkipJsonSchema[None]) = (
        None
    )

    @model_validator(mode="after")
    def _required_stay_set(self) -> KnownSourceUpdate:
        required = ("name", "latitude", "longitude", "altitude_m", "frequency_mhz")
        nulled = [f for f in required if f in self.model_fields_set and getattr(self, f) is None]
        if nulled:
            raise ValueError(f"cannot be null: {', '.join(nulled)}")
        return self


class KnownSourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    latitude: float
    longitude: float
    altitude_m: float
    frequency_mhz: float | None
    eirp_dbm: float | None
    modulation: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class KnownSourcePage(BaseModel):
    items: list[KnownSourceOut]
    total: int
    limit: int
    offset: int


# --- training data ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeasurementRow:
    """One approved measurement, as the training data loader reads it (units in the names)."""

    task_id: uuid.UUID
    websdr_id: str
    known_source_id: uuid.UUID | None
    timestamp: datetime
    frequency_mhz: float
    snr_db: float
    frequency_offset_hz: float
    power_dbm: float | None
    noise_floor_dbm: float | None
    signal_power_dbfs: float | None
    noise_floor_dbfs: float | None
    occupied_bandwidth_hz: float | None
    sample_rate_hz: float | None
    gps_locked: bool
    data_url: str
    meta_url: str | None


class MeasurementPage(BaseModel):
    items: list[MeasurementRow]
    total: int
    limit: int
    offset: int


# --- jobs -----------------------------------------------------------------------------


class Selection(BaseModel):
    """Which approved sessions: a frequency band and a time window, both optional."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    frequency_min_mhz: float | None = Field(default=None, ge=0, le=MAX_FREQUENCY_MHZ)
    frequency_max_mhz: float | None = Field(default=None, ge=0, le=MAX_FREQUENCY_MHZ)
    start: datetime | None = Field(default=None, description="Inclusive, timezone-aware")
    end: datetime | None = Field(default=None, description="Exclusive, timezone-aware")

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Selection:
        low, high = self.frequency_min_mhz, self.frequency_max_mhz
        if low is not None and high is not None and low > high:
            raise ValueError("frequency_min_mhz must not exceed frequency_max_mhz")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def describe(self) -> str:
        """In words, for messages: "144-146 MHz, any time"."""
        low, high = self.frequency_min_mhz, self.frequency_max_mhz
        if low is None and high is None:
            band = "any frequency"
        elif high is None:
            band = f">= {low:g} MHz"
        elif low is None:
            band = f"<= {high:g} MHz"
        else:
            band = f"{low:g}-{high:g} MHz"
        times = [f"from {self.start.isoformat()}"] if self.start else []
        times += [f"before {self.end.isoformat()}"] if self.end else []
        return f"{band}, {' '.join(times) or 'any time'}"


class SelectionQuery(Selection):
    """A selection read from query parameters (beside others such as limit and offset)."""

    model_config = ConfigDict(extra="ignore")


class JobRequest(Selection):
    folds: int = Field(default=5, ge=2, le=10, description="Cross-validation folds")
    activate: Literal["auto", "never"] = Field(
        default="auto",
        description="auto: activate the fit if it beats the active model on held-out sessions",
    )

    def selection(self) -> Selection:
        return Selection.model_validate(self.model_dump(include=set(Selection.model_fields)))


class JobOut(BaseModel):
    job_id: uuid.UUID
    state: JobState
    progress: float = Field(ge=0, le=100)
    parameters: dict[str, Any]
    error_message: str | None
    result: dict[str, Any] | None
    model_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


# --- model registry -----------------------------------------------------------------


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: uuid.UUID
    name: str
    version: int
    kind: str
    parameters: dict[str, Any]
    metrics: dict[str, Any] | None
    training_data: dict[str, Any] | None
    artifact_url: str | None
    is_active: bool
    activated_at: datetime | None
    training_session_id: uuid.UUID | None
    created_at: datetime


class ModelPage(BaseModel):
    items: list[ModelOut]
    total: int
    limit: int
    offset: int


class RollbackOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    #: The version active now; None: localization uses the default calibration.
    active_model: ModelOut | None
    calibration_version: str
