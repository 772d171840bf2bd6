"""Acquisition use cases on the API side. Services flush; endpoints commit."""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.recording import load_recording
from heimdall.acquisition.schemas import AcquireRequest, SpectrumOut
from heimdall.core.storage import ObjectStore
from heimdall.dsp.spectrum import welch_psd
from heimdall.models import Acquisition, AcquisitionState, KnownSource, Measurement, WebSDRStation
from heimdall.stations import repository as stations_repository


class AcquisitionRequestError(ValueError):
    """The request names stations or a frequency the network cannot serve."""


async def select_stations(session: AsyncSession, request: AcquireRequest) -> list[WebSDRStation]:
    if request.stations is None:
        stations = list(await stations_repository.list_active(session))
        if not stations:
            raise AcquisitionRequestError("the station registry has no active receiver")
    else:
        stations = list(await stations_repository.get_many(session, request.stations))
        known = {s.id for s in stations}
        unknown = [s for s in request.stations if s not in known]
        if unknown:
            raise AcquisitionRequestError(f"unknown station ids: {', '.join(unknown)}")
        inactive = [s.id for s in stations if not s.active]
        if inactive:
            raise AcquisitionRequestError(f"inactive stations: {', '.join(inactive)}")
    outside = [s.id for s in stations if not s.covers(request.frequency_mhz)]
    if outside:
        raise AcquisitionRequestError(
            f"{request.frequency_mhz} MHz is outside the coverage of: {', '.join(outside)}"
        )
    return stations


async def create_acquisition(session: AsyncSession, request: AcquireRequest) -> Acquisition:
    stations = await select_stations(session, request)
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
        station_ids=[s.id for s in stations],
        status=AcquisitionState.PENDING.value,
        progress=0.0,
        errors=[],
        known_source_id=request.known_source_id,
    )
    session.add(acquisition)
    await session.flush()
    return acquisition


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
