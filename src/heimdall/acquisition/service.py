"""Acquisition use cases on the API side. Services flush; endpoints commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.schemas import AcquireRequest
from heimdall.core.settings import get_settings
from heimdall.models import Acquisition, AcquisitionState, WebSDRStation
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


def deadline_for(request: AcquireRequest) -> datetime:
    """The latest the acquisition may end: its wait for channels, its recording, its storing."""
    settings = get_settings()
    wait_s = request.max_wait_seconds or settings.acquisition_max_wait_s
    return datetime.now(UTC) + timedelta(
        seconds=wait_s + request.duration_seconds + settings.acquisition_finish_allowance_s
    )


async def create_acquisition(
    session: AsyncSession, request: AcquireRequest, idempotency_key: str | None = None
) -> Acquisition:
    stations = await select_stations(session, request)
    acquisition = Acquisition(
        task_id=uuid.uuid4(),
        frequency_mhz=request.frequency_mhz,
        duration_seconds=request.duration_seconds,
        description=request.description,
        station_ids=[s.id for s in stations],
        status=AcquisitionState.PENDING.value,
        progress=0.0,
        errors=[],
        deadline_at=deadline_for(request),
        idempotency_key=idempotency_key,
    )
    session.add(acquisition)
    await session.flush()
    return acquisition


def same_request(acquisition: Acquisition, request: AcquireRequest) -> bool:
    """Whether a retried request (same Idempotency-Key) asks for the same acquisition."""
    return (
        acquisition.frequency_mhz == request.frequency_mhz
        and acquisition.duration_seconds == request.duration_seconds
        and acquisition.description == request.description
        and (
            request.stations is None or sorted(request.stations) == sorted(acquisition.station_ids)
        )
    )
