"""HTTP API of the training service: known sources, training data, jobs, model registry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from heimdall.core.bounds import MAX_OFFSET
from heimdall.core.db import get_db_session
from heimdall.core.errors import DependencyUnavailable, problems
from heimdall.core.security import require_token
from heimdall.localization.calibration import DEFAULT_CALIBRATION_VERSION
from heimdall.training import repository, service
from heimdall.training.data import RFDataLoader
from heimdall.training.schemas import (
    JobOut,
    JobPage,
    JobRequest,
    KnownSourceCreate,
    KnownSourceOut,
    KnownSourcePage,
    KnownSourceUpdate,
    MeasurementPage,
    MeasurementRow,
    ModelOut,
    ModelPage,
    RollbackOut,
    SelectionQuery,
)

router = APIRouter(prefix="/api/v1/training", tags=["training"])
Session = Annotated[AsyncSession, Depends(get_db_session)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
NOT_FOUND = problems(404)
NOT_FOUND_OR_CONFLICT = problems(404, 409)
Guarded = [Depends(require_token)]

ENQUEUE_TIMEOUT_S = 10.0


T = TypeVar("T")


def _found(item: T | None, what: str) -> T:
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")
    return item


def _http(exc: Exception) -> HTTPException:
    if isinstance(exc, service.NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


# --- known sources ---------------------------------------------------------------------
@router.get("/known-sources", response_model=KnownSourcePage)
async def list_known_sources(
    session: Session, limit: Limit = 100, offset: Offset = 0
) -> KnownSourcePage:
    items, total = await session.run_sync(
        lambda s: repository.known_sources(s, limit=limit, offset=offset)
    )
    return KnownSourcePage(
        items=[KnownSourceOut.model_validate(i) for i in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/known-sources",
    status_code=status.HTTP_201_CREATED,
    response_model=KnownSourceOut,
    dependencies=Guarded,
    responses=problems(409, s409="A known source of this name exists"),
)
async def create_known_source(request: KnownSourceCreate, session: Session) -> KnownSourceOut:
    try:
        async with session.begin():
            return await session.run_sync(service.create_known_source, request)
    except IntegrityError as exc:  # the same name created concurrently
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"a known source named {request.name!r} already exists"
        ) from exc
    except service.Conflict as exc:
        raise _http(exc) from exc


@router.get("/known-sources/{source_id}", response_model=KnownSourceOut, responses=NOT_FOUND)
async def get_known_source(source_id: uuid.UUID, session: Session) -> KnownSourceOut:
    source = await session.run_sync(repository.known_source, source_id)
    return KnownSourceOut.model_validate(_found(source, f"known source with id {source_id}"))


@router.patch(
    "/known-sources/{source_id}",
    response_model=KnownSourceOut,
    dependencies=Guarded,
    responses=NOT_FOUND_OR_CONFLICT,
)
async def update_known_source(
    source_id: uuid.UUID, request: KnownSourceUpdate, session: Session
) -> KnownSourceOut:
    try:
        async with session.begin():
            return await session.run_sync(service.update_known_source, source_id, request)
    except IntegrityError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"a known source named {request.name!r} already exists"
        ) from exc
    except (service.NotFound, service.Conflict) as exc:
        raise _http(exc) from exc


@router.delete(
    "/known-sources/{source_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=Guarded,
    responses=NOT_FOUND,
)
async def delete_known_source(source_id: uuid.UUID, session: Session) -> Response:
    """Acquisitions linked to it stay, unlinked."""
    try:
        async with session.begin():
            await session.run_sync(service.delete_known_source, source_id)
    except service.NotFound as exc:
        raise _http(exc) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- training data ---------------------------------------------------------------------
@router.get("/data/measurements", response_model=MeasurementPage)
async def measurements(
    session: Session,
    selection: Annotated[SelectionQuery, Query()],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> MeasurementPage:
    """Measurements of approved sessions in a band and time window (the data loader's rows)."""

    def load(s: SyncSession) -> tuple[list[MeasurementRow], int]:
        loader = RFDataLoader(s)
        return loader.rows(selection, limit=limit, offset=offset), loader.count(selection)

    items, total = await session.run_sync(load)
    return MeasurementPage(items=items, total=total, limit=limit, offset=offset)


# --- jobs ------------------------------------------------------------------------------
def _enqueue(job_id: uuid.UUID) -> None:
    from heimdall.training.tasks import calibrate

    calibrate.apply_async(args=[str(job_id)], retry=False)


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    dependencies=Guarded,
    responses=problems(409, s409="A job is already running"),
)
async def start_job(request: JobRequest, session: Session) -> JobOut:
    """Fit the calibration from approved known-source sessions (a Celery task)."""
    try:
        async with session.begin():
            job = await session.run_sync(service.create_job, request)
            accepted = service.job_out(job)
    except service.Conflict as exc:
        raise _http(exc) from exc
    # Enqueue only after the commit, so the worker always finds the row it is given.
    try:
        await asyncio.wait_for(asyncio.to_thread(_enqueue, job.id), ENQUEUE_TIMEOUT_S)
    except Exception as exc:
        async with session.begin():
            await session.delete(job)  # no orphan row for a job that never ran
        raise DependencyUnavailable(
            f"RabbitMQ message broker unavailable, training job not queued: {type(exc).__name__}"
        ) from exc
    return accepted


@router.get("/jobs", response_model=JobPage)
async def list_jobs(session: Session, limit: Limit = 50, offset: Offset = 0) -> JobPage:
    items, total = await session.run_sync(lambda s: repository.jobs(s, limit=limit, offset=offset))
    return JobPage(
        items=[service.job_out(j) for j in items], total=total, limit=limit, offset=offset
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses=NOT_FOUND)
async def get_job(job_id: uuid.UUID, session: Session) -> JobOut:
    job = await session.run_sync(repository.job, job_id)
    return service.job_out(_found(job, f"training job with id {job_id}"))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    dependencies=Guarded,
    responses=NOT_FOUND_OR_CONFLICT,
)
async def cancel_job(job_id: uuid.UUID, session: Session) -> JobOut:
    """Stop a pending or running job; it registers no model."""
    try:
        async with session.begin():
            return await session.run_sync(service.cancel_job, job_id)
    except (service.NotFound, service.Conflict) as exc:
        raise _http(exc) from exc


# --- model registry --------------------------------------------------------------------
@router.get("/models", response_model=ModelPage)
async def list_models(session: Session, limit: Limit = 50, offset: Offset = 0) -> ModelPage:
    """Every version, newest first."""
    items, total = await session.run_sync(
        lambda s: repository.models(s, limit=limit, offset=offset)
    )
    return ModelPage(
        items=[ModelOut.model_validate(m) for m in items], total=total, limit=limit, offset=offset
    )


# Declared before /models/{model_id}: "rollback" is not a model id.
@router.post(
    "/models/rollback",
    response_model=RollbackOut,
    dependencies=Guarded,
    responses=problems(409, s409="No earlier version to return to"),
)
async def rollback(session: Session) -> RollbackOut:
    """Re-activate the version active before the current one (none: the default calibration)."""
    try:
        async with session.begin():
            previous = await session.run_sync(service.rollback)
    except service.Conflict as exc:
        raise _http(exc) from exc
    version = DEFAULT_CALIBRATION_VERSION if previous is None else previous.parameters["version"]
    return RollbackOut(active_model=previous, calibration_version=str(version))


@router.get("/models/{model_id}", response_model=ModelOut, responses=NOT_FOUND)
async def get_model(model_id: uuid.UUID, session: Session) -> ModelOut:
    model = await session.run_sync(repository.model, model_id)
    return ModelOut.model_validate(_found(model, f"model with id {model_id}"))


@router.post(
    "/models/{model_id}/activate",
    response_model=ModelOut,
    dependencies=Guarded,
    responses=NOT_FOUND,
)
async def activate(model_id: uuid.UUID, session: Session) -> ModelOut:
    """Make this version the only active one; later localizations use it."""
    try:
        async with session.begin():
            return await session.run_sync(service.activate, model_id)
    except service.NotFound as exc:
        raise _http(exc) from exc
