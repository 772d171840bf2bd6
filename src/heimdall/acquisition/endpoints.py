"""HTTP contract of rf-acquisition (ARCHITECTURE section 3)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition import ACQUIRE_TASK, repository, service
from heimdall.acquisition.schemas import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    AcquireAccepted,
    AcquireRequest,
    AcquisitionStatus,
    CancelResponse,
    MeasurementOut,
    SessionOut,
    SpectrumOut,
)
from heimdall.core import metrics
from heimdall.core.bounds import Offset, StationIdPath
from heimdall.core.broker import AsyncTaskPublisher
from heimdall.core.celery_app import celery_app
from heimdall.core.db import get_db_session
from heimdall.core.errors import DependencyUnavailable, problems
from heimdall.core.security import rate_limited, require_token
from heimdall.core.storage import ObjectStore, ObjectStoreError, ObjectStoreUnavailable
from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState, Approval

router = APIRouter(prefix="/api/v1/acquisition", tags=["acquisition"])
Session = Annotated[AsyncSession, Depends(get_db_session)]

ENQUEUE_TIMEOUT_S = 10.0


#: The trigger's publisher: asynchronous, so the request's path has no thread hand-off.
#: By name: the API never imports the worker's recording code (seconds on a cold start).
publisher = AsyncTaskPublisher(celery_app)


async def _load(session: AsyncSession, task_id: uuid.UUID) -> Acquisition:
    acquisition = await repository.get(session, task_id)
    if acquisition is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no acquisition with task_id {task_id}")
    return acquisition


def accepted_response(acquisition: Acquisition) -> AcquireAccepted:
    return AcquireAccepted(
        task_id=acquisition.task_id,
        state=acquisition.state,
        frequency_mhz=acquisition.frequency_mhz,
        duration_seconds=acquisition.duration_seconds,
        stations=acquisition.station_ids,
        status_url=f"/api/v1/acquisition/status/{acquisition.task_id}",
        deadline_at=acquisition.deadline_at,
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        description="Repeating a request with the same key returns the same task, never a second",
    ),
]


@router.post(
    "/acquire",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcquireAccepted,
    dependencies=[Depends(require_token), Depends(rate_limited("acquire"))],
    responses=problems(
        409,
        s409="The Idempotency-Key was used for another request",
        s422="Invalid request, or stations/frequency the registry cannot serve",
    ),
)
async def acquire(
    request: AcquireRequest, session: Session, idempotency_key: IdempotencyKey = None
) -> AcquireAccepted:
    try:
        async with session.begin():
            # One statement, its own transaction: no BEGIN/COMMIT round trips on the
            # trigger's path (the registry is cached, the key checked by the INSERT).
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            acquisition, created = await service.create_acquisition(
                session, request, idempotency_key
            )
    except service.AcquisitionRequestError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if not created:
        if not service.same_request(acquisition, request):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Idempotency-Key {idempotency_key!r} was used for another request "
                f"(task {acquisition.task_id})",
            )
        return accepted_response(acquisition)
    # Enqueue only after the commit, so the worker always finds the row it is given.
    try:
        async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
            await publisher.send_task(ACQUIRE_TASK, [str(acquisition.task_id)])
    except Exception as exc:
        async with session.begin():
            await repository.remove(session, acquisition.task_id)  # no orphan row
        raise DependencyUnavailable(
            f"RabbitMQ message broker unavailable, acquisition not queued: {type(exc).__name__}"
        ) from exc
    metrics.acquisitions_total.inc()
    return accepted_response(acquisition)


@router.get("/status/{task_id}", response_model=AcquisitionStatus, responses=problems(404))
async def get_status(task_id: uuid.UUID, session: Session) -> AcquisitionStatus:
    a = await _load(session, task_id)
    status_out = AcquisitionStatus.of(a)
    status_out.queue_position = await repository.queue_position(session, a)
    return status_out


@router.post(
    "/cancel/{task_id}",
    response_model=CancelResponse,
    dependencies=[Depends(require_token)],
    responses=problems(404, 409, s409="The acquisition already finished"),
)
async def cancel(task_id: uuid.UUID, session: Session) -> CancelResponse:
    async with session.begin():
        acquisition = await _load(session, task_id)
        if not await repository.cancel_if_active(session, task_id):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"acquisition {task_id} already finished with state {acquisition.status}",
            )
    return CancelResponse(task_id=task_id, state=AcquisitionState.CANCELLED)


@router.get("/measurements/{task_id}", response_model=list[MeasurementOut], responses=problems(404))
async def measurements(task_id: uuid.UUID, session: Session) -> list[MeasurementOut]:
    await _load(session, task_id)
    return [
        MeasurementOut.model_validate(m) for m in await repository.measurements_of(session, task_id)
    ]


@router.get("/sessions", response_model=list[SessionOut])
async def sessions(
    session: Session,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    state: AcquisitionState | None = None,
    approval: Approval | None = None,
) -> list[SessionOut]:
    rows = await repository.recent_sessions(
        session,
        limit=limit,
        offset=offset,
        state=state.value if state else None,
        approval=approval.value if approval else None,
    )
    return [
        SessionOut(
            task_id=a.task_id,
            frequency_mhz=a.frequency_mhz,
            duration_seconds=a.duration_seconds,
            status=a.state,
            websdr_count=count,
            timestamp=a.created_at,
            approval=Approval(a.approval),
            description=a.description,
            source=AcquisitionSource(a.source),
        )
        for a, count in rows
    ]


@router.get(
    "/spectrum/{task_id}/{station_id}",
    response_model=SpectrumOut,
    responses=problems(404, s422="Invalid request, or a recording shorter than one FFT"),
)
async def spectrum(
    task_id: uuid.UUID,
    station_id: StationIdPath,
    session: Session,
    bins: Annotated[int, Query(ge=16, le=4096, description="FFT length (bins)")] = 512,
) -> SpectrumOut:
    """A receiver's power spectrum in this acquisition, computed from its stored IQ."""
    await _load(session, task_id)
    measurement = await repository.measurement_of(session, task_id, station_id)
    if measurement is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no recording of {station_id} in acquisition {task_id}"
        )
    try:
        return await asyncio.to_thread(service.spectrum_of, ObjectStore(), measurement, bins)
    except ObjectStoreUnavailable as exc:
        raise DependencyUnavailable(str(exc)) from exc
    except ObjectStoreError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"the recording of {station_id} is missing: {exc}"
        ) from exc
    except ValueError as exc:  # fewer samples than one FFT
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
