"""Acquisition use cases on the API side. Services flush; endpoints commit."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition import repository
from heimdall.acquisition.recording import load_recording
from heimdall.acquisition.schemas import AcquireRequest, SpectrumOut
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore
from heimdall.dsp.spectrum import welch_psd
from heimdall.models import Acquisition, AcquisitionState, KnownSource, Measurement
from heimdall.stations import repository as stations_repository


class AcquisitionRequestError(ValueError):
    """The request names stations or a frequency the network cannot serve."""


# The registry changes when an operator reseeds it; every trigger reading it again
# cost a database round trip. Read at most this often per API process.
REGISTRY_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class RegisteredStation:
    id: str
    active: bool
    frequency_ranges_mhz: tuple[tuple[float, float], ...]

    def covers(self, frequency_mhz: float) -> bool:
        return any(low <= frequency_mhz <= high for low, high in self.frequency_ranges_mhz)


class RegistryCache:
    def __init__(self, ttl_s: float = REGISTRY_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._stations: dict[str, RegisteredStation] = {}
        self._read_at = -math.inf

    async def stations(self, session: AsyncSession) -> dict[str, RegisteredStation]:
        if time.monotonic() - self._read_at > self.ttl_s:
            rows = await stations_repository.all_stations(session)
            self._stations = {
                s.id: RegisteredStation(
                    s.id, s.active, tuple((low, high) for low, high in s.frequency_ranges_mhz)
                )
                for s in rows
            }
            self._read_at = time.monotonic()
        return self._stations


registry_cache = RegistryCache()


async def select_stations(session: AsyncSession, request: AcquireRequest) -> list[str]:
    """The ids of the receivers the request asks for, checked against the registry."""
    registry = await registry_cache.stations(session)
    if request.stations is None:
        stations = sorted(s for s, station in registry.items() if station.active)
        if not stations:
            raise AcquisitionRequestError("the station registry has no active receiver")
    else:
        stations = sorted(request.stations)
        unknown = [s for s in request.stations if s not in registry]
        if unknown:
            raise AcquisitionRequestError(f"unknown station ids: {', '.join(unknown)}")
        inactive = [s for s in stations if not registry[s].active]
        if inactive:
            raise AcquisitionRequestError(f"inactive stations: {', '.join(inactive)}")
    outside = [s for s in stations if not registry[s].covers(request.frequency_mhz)]
    if outside:
        raise AcquisitionRequestError(
            f"{request.frequency_mhz} MHz is outside the coverage of: {', '.join(outside)}"
        )
    return stations


def deadline_for(request: AcquireRequest) -> datetime:
    """The latest the acquisition may end: its wait for channels, its recording, its storing."""
    settings = get_settings()
    wait_s = request.max_wait_seconds or settings.acquisition_max_wait_s
    return datetime.now(UTC) + timedelta(
        seconds=wait_s + request.duration_seconds + settings.acquisition_finish_allowance_s
    )


async def create_acquisition(
    session: AsyncSession, request: AcquireRequest, idempotency_key: str | None = None
) -> tuple[Acquisition, bool]:
    """Insert the PENDING acquisition; (it, True), or (the one made earlier with the key, False)."""
    if (
        request.known_source_id is not None
        and await session.get(KnownSource, request.known_source_id) is None
    ):
        raise AcquisitionRequestError(f"no known source with id {request.known_source_id}")
    acquisition = Acquisition(
        task_id=uuid.uuid4(),
        frequency_mhz=request.frequency_mhz,
        duration_seconds=request.duration_seconds,
        description=request.description,
        station_ids=await select_stations(session, request),
        status=AcquisitionState.PENDING.value,
        progress=0.0,
        errors=[],
        deadline_at=deadline_for(request),
        idempotency_key=idempotency_key,
        known_source_id=request.known_source_id,
    )
    if await repository.insert_new(session, acquisition):
        return acquisition, True
    existing = await repository.by_idempotency_key(session, idempotency_key or "")
    if existing is None:  # the other request's row went away meanwhile (broker down)
        raise AcquisitionRequestError("a request with this Idempotency-Key failed; try again")
    return existing, False


def same_request(acquisition: Acquisition, request: AcquireRequest) -> bool:
    """Whether a retried request (same Idempotency-Key) asks for the same acquisition."""
    return (
        acquisition.frequency_mhz == request.frequency_mhz
        and acquisition.duration_seconds == request.duration_seconds
        and acquisition.description == request.description
        and acquisition.known_source_id == request.known_source_id
        and (
            request.stations is None or sorted(request.stations) == sorted(acquisition.station_ids)
        )
    )


def spectrum_of(store: ObjectStore, measurement: Measurement, segment_length: int) -> SpectrumOut:
    """The PSD of a stored recording (blocking: object storage and an FFT)."""
    capture = load_recording(store, measurement.data_url, measurement.meta_url)
    psd = welch_psd(
        capture.samples,
        capture.sample_rate_hz,
        center_frequency_hz=capture.center_frequency_hz,
        segment_length=segment_length,
    )
    # An all-zero bin (a silent receiver) has no logarithm; floor it far below any noise.
    psd_db = 10.0 * np.log10(np.maximum(psd.psd_fs2_per_hz.astype(np.float64), 1e-30))
    return SpectrumOut(
        task_id=measurement.task_id,
        station_id=measurement.websdr_id,
        center_frequency_hz=capture.center_frequency_hz,
        sample_rate_hz=psd.sample_rate_hz,
        bin_width_hz=psd.bin_width_hz,
        segment_count=psd.segment_count,
        frequency_offset_hz=np.round(psd.frequency_offset_hz.astype(np.float64), 3).tolist(),
        psd_dbfs_per_hz=np.round(psd_db, 2).tolist(),
    )
