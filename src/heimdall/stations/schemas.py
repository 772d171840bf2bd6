from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StationIn(BaseModel):
    """One receiver as written in a registry YAML file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    url: str
    protocol: Literal["kiwisdr", "openwebrx"]
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = 0.0
    frequency_ranges_mhz: list[tuple[float, float]] = Field(min_length=1)
    # Channels Heimdall may hold at once on this receiver (shared with other listeners).
    channels: int = Field(default=4, ge=1, le=64)
    active: bool = True

    @field_validator("frequency_ranges_mhz")
    @classmethod
    def _ordered(cls, ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for low, high in ranges:
            if not 0 < low < high:
                raise ValueError(f"frequency range [{low}, {high}] must satisfy 0 < low < high")
        return ranges


class StationRegistryFile(BaseModel):
    stations: list[StationIn] = Field(min_length=1)

    @field_validator("stations")
    @classmethod
    def _unique_ids(cls, stations: list[StationIn]) -> list[StationIn]:
        ids = [s.id for s in stations]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate station ids: {', '.join(duplicated)}")
        return stations


class StationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    url: str
    protocol: str
    latitude: float
    longitude: float
    altitude_m: float
    frequency_ranges_mhz: list[list[float]]
    channels: int
    active: bool


class StationStateOut(BaseModel):
    """A receiver's live state, derived from the acquisitions that include it."""

    station_id: str
    state: Literal["idle", "recording", "failed"] = Field(
        description="recording: in an acquisition in PROGRESS; failed: its last finished "
        "acquisition reported an error for it; idle otherwise"
    )
    task_id: uuid.UUID | None = Field(
        default=None, description="the acquisition recording now, else the last finished one"
    )
    error: str | None = Field(default=None, description="the last acquisition's error for it")
    last_finished_at: datetime | None = None
    # Receiver channels held by acquisitions (unexpired leases) and how many Heimdall may hold.
    busy_channels: int | None = None
    channels: int | None = None
