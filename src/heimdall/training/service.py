"""Training use cases shared by the API and the worker: known sources, jobs, the registry.

Functions take a synchronous session and flush, never commit (the API calls them
through ``AsyncSession.run_sync`` inside its transaction, the worker in its own).
They return schemas, so that nothing lazy-loads outside the session's greenlet.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from heimdall.models import KnownSource, TrainingSession
from heimdall.training import repository
from heimdall.training.data import RFDataLoader
from heimdall.training.schemas import (
    JobOut,
    JobRequest,
    KnownSourceCreate,
    KnownSourceOut,
    KnownSourceUpdate,
    ModelOut,
    Selection,
)

NAME = repository.CALIBRATION_MODEL_NAME


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    """The request is valid but the stored state forbids it (HTTP 409)."""


# --- known sources ---------------------------------------------------------------------
def create_known_source(session: Session, request: KnownSourceCreate) -> KnownSourceOut:
    if repository.known_source_named(session, request.name) is not None:
        raise Conflict(f"a known source named {request.name!r} already exists")
    source = KnownSource(id=uuid.uuid4(), **request.model_dump())
    session.add(source)
    session.flush()
    session.refresh(source)  # server defaults (created_at, updated_at)
    return KnownSourceOut.model_validate(source)


def update_known_source(
    session: Session, source_id: uuid.UUID, request: KnownSourceUpdate
) -> KnownSourceOut:
    source = repository.known_source(session, source_id)
    if source is None:
        raise NotFound(f"no known source with id {source_id}")
    changes = request.model_dump(exclude_unset=True)
    name = changes.get("name")
    if (
        name is not None
        and name != source.name
        and repository.known_source_named(session, name) is not None
    ):
        raise Conflict(f"a known source named {name!r} already exists")
    for field, value in changes.items():
        setattr(source, field, value)
    session.flush()
    session.refresh(source)
    return KnownSourceOut.model_validate(source)


def delete_known_source(session: Session, source_id: uuid.UUID) -> None:
    """Linked acquisitions stay, their link set null (the foreign key's ON DELETE)."""
    source = repository.known_source(session, source_id)
    if source is None:
        raise NotFound(f"no known source with id {source_id}")
    session.delete(source)
    session.flush()


# --- jobs ------------------------------------------------------------------------------
def no_data_message(selection: Selection) -> str:
    return (
        f"no approved session of a known source in the selection ({selection.describe()}): "
        "approve successful acquisitions linked to a known source first"
    )


def create_job(session: Session, request: JobRequest) -> TrainingSession:
    """A PENDING job row; Conflict when there is nothing to train on."""
    selection = request.selection()
    if RFDataLoader(session).count(selection, known_sources_only=True) == 0:
        raise Conflict(no_data_message(selection))
    job = TrainingSession(id=uuid.uuid4(), parameters=request.model_dump(mode="json"), progress=0.0)
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def job_out(job: TrainingSession) -> JobOut:
    return JobOut(
        job_id=job.id,
        state=job.state,
        progress=job.progress,
        parameters=job.parameters,
        error_message=job.error_message,
        result=job.result,
        model_id=job.model_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def cancel_job(session: Session, job_id: uuid.UUID) -> JobOut:
    job = repository.job(session, job_id)
    if job is None:
        raise NotFound(f"no training job with id {job_id}")
    if not repository.cancel_job_if_active(session, job_id):
        raise Conflict(f"training job {job_id} already finished with state {job.status}")
    session.refresh(job)
    return job_out(job)


# --- model registry --------------------------------------------------------------------
def activate(session: Session, model_id: uuid.UUID, *, reason: str = "manual") -> ModelOut:
    """Make a version the only active one of its name, atomically, and remember it."""
    target = repository.model(session, model_id)
    if target is None:
        raise NotFound(f"no model with id {model_id}")
    repository.lock_registry(session, target.name)
    session.refresh(target)
    if not target.is_active:
        repository.set_active(session, target.name, target.id)
        repository.record_activation(session, target.name, target.id, reason)
    return ModelOut.model_validate(target)


def rollback(session: Session, name: str = NAME) -> ModelOut | None:
    """Re-activate the version active before the current one; None: the default calibration.

    The activations form a stack: each rollback pops the newest one, so rolling back
    twice after activating v1, v2, v3 leaves v1 active, and once more the default.
    """
    repository.lock_registry(session, name)
    active = repository.active_model(session, name)
    if active is None:
        raise Conflict("no model is active: localization already uses the default calibration")
    stack = repository.activation_stack(session, name)
    # Pop the newest activation, the active model's (and any stale one above it, left
    # by a model activated outside this API), marking each rolled back.
    now = datetime.now(UTC)
    while stack:
        popped = stack.pop(0)
        popped.rolled_back_at = now
        if popped.model_id == active.id:
            break
    previous = repository.model(session, stack[0].model_id) if stack else None
    repository.set_active(session, name, previous.id if previous else None)
    session.flush()
    return None if previous is None else ModelOut.model_validate(previous)
