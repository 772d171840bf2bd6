"""Queries on known sources, training jobs and the model registry. Flush at most.

Synchronous on purpose: the worker's job and the API share them, the API through
``AsyncSession.run_sync`` (SQLAlchemy runs them on the async connection, without
blocking the event loop).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from heimdall.models import JobState, KnownSource, Model, ModelActivation, TrainingSession

CALIBRATION_MODEL_NAME = "calibration"
ACTIVE_JOB_STATES = (JobState.PENDING.value, JobState.PROGRESS.value)


def _page(session: Session, query: Any, limit: int, offset: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = list(session.scalars(query.limit(limit).offset(offset)).all())
    return items, int(total or 0)


# --- known sources -----------------------------------------------------------------
def known_sources(session: Session, *, limit: int, offset: int) -> tuple[list[KnownSource], int]:
    return _page(session, select(KnownSource).order_by(KnownSource.name), limit, offset)


def known_source(session: Session, source_id: uuid.UUID) -> KnownSource | None:
    return session.get(KnownSource, source_id)


def known_sources_by_id(
    session: Session, source_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, KnownSource]:
    rows = session.scalars(select(KnownSource).where(KnownSource.id.in_(list(source_ids))))
    return {s.id: s for s in rows}


def known_source_named(session: Session, name: str) -> KnownSource | None:
    return session.scalar(select(KnownSource).where(KnownSource.name == name))


# --- jobs ------------------------------------------------------------------------------
def jobs(session: Session, *, limit: int, offset: int) -> tuple[list[TrainingSession], int]:
    query = select(TrainingSession).order_by(TrainingSession.created_at.desc(), TrainingSession.id)
    return _page(session, query, limit, offset)


def job(session: Session, job_id: uuid.UUID) -> TrainingSession | None:
    return session.get(TrainingSession, job_id)


def lock_job(session: Session, job_id: uuid.UUID) -> TrainingSession | None:
    """The job row, locked until the caller's transaction ends."""
    return session.scalars(
        select(TrainingSession).where(TrainingSession.id == job_id).with_for_update()
    ).one_or_none()


def job_status(session: Session, job_id: uuid.UUID) -> str | None:
    return session.scalar(select(TrainingSession.status).where(TrainingSession.id == job_id))


def cancel_job_if_active(session: Session, job_id: uuid.UUID) -> bool:
    """Atomically move an unfinished job to CANCELLED; False if it had finished."""
    cancelled = session.execute(
        update(TrainingSession)
        .where(TrainingSession.id == job_id, TrainingSession.status.in_(ACTIVE_JOB_STATES))
        .values(status=JobState.CANCELLED.value, finished_at=datetime.now(UTC))
        .returning(TrainingSession.id)
    ).scalar_one_or_none()
    return cancelled is not None


def set_job_progress(session: Session, job_id: uuid.UUID, progress: float) -> None:
    """Only while the job runs: a cancel already recorded is never overwritten."""
    session.execute(
        update(TrainingSession)
        .where(TrainingSession.id == job_id, TrainingSession.status == JobState.PROGRESS.value)
        .values(progress=progress)
    )


# --- model registry --------------------------------------------------------------------
def models(session: Session, *, limit: int, offset: int) -> tuple[list[Model], int]:
    query = select(Model).order_by(Model.created_at.desc(), Model.version.desc())
    return _page(session, query, limit, offset)


def model(session: Session, model_id: uuid.UUID) -> Model | None:
    return session.get(Model, model_id)


#: Advisory-lock namespace of the model registry: one lock per model name.
MODEL_LOCK_PREFIX = "heimdall.models."


def active_model(session: Session, name: str = CALIBRATION_MODEL_NAME) -> Model | None:
    return session.scalar(select(Model).where(Model.name == name, Model.is_active))


def lock_registry(session: Session, name: str = CALIBRATION_MODEL_NAME) -> None:
    """Serialise changes to one model name's versions and activation (transaction-scoped).

    Two activations racing would otherwise both pass "deactivate the others" and
    collide on the one-active index; two jobs would pick the same version number.
    """
    lock_name = MODEL_LOCK_PREFIX + name  # sent as a bound parameter, hashed by PostgreSQL
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(lock_name))))


def next_version(session: Session, name: str = CALIBRATION_MODEL_NAME) -> int:
    latest = session.scalar(select(func.max(Model.version)).where(Model.name == name))
    return int(latest or 0) + 1


def set_active(session: Session, name: str, model_id: uuid.UUID | None) -> None:
    """Make ``model_id`` the only active version of ``name`` (None: none active)."""
    session.execute(
        update(Model).where(Model.name == name, Model.is_active).values(is_active=False)
    )
    if model_id is not None:
        session.execute(
            update(Model)
            .where(Model.id == model_id)
            .values(is_active=True, activated_at=datetime.now(UTC))
        )
    # (The ORM updates loaded objects to match: synchronize_session "auto".)


def activation_stack(session: Session, name: str) -> list[ModelActivation]:
    """Activations not rolled back, newest first."""
    return list(
        session.scalars(
            select(ModelActivation)
            .where(ModelActivation.name == name, ModelActivation.rolled_back_at.is_(None))
            .order_by(ModelActivation.created_at.desc(), ModelActivation.id)
        ).all()
    )


def record_activation(session: Session, name: str, model_id: uuid.UUID, reason: str) -> None:
    session.add(
        ModelActivation(name=name, model_id=model_id, reason=reason, created_at=datetime.now(UTC))
    )
    session.flush()
