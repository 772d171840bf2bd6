"""Queries on acquisitions and measurements. They flush at most; callers commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from heimdall.models import Acquisition, AcquisitionState, Measurement

ACTIVE_STATES = (AcquisitionState.PENDING.value, AcquisitionState.PROGRESS.value)


# --- async (API) -----------------------------------------------------------------
async def get(session: AsyncSession, task_id: uuid.UUID) -> Acquisition | None:
    return await session.get(Acquisition, task_id)


async def cancel_if_active(session: AsyncSession, task_id: uuid.UUID) -> bool:
    """Atomically move an unfinished acquisition to CANCELLED; False if it had finished."""
    result = await session.execute(
        update(Acquisition)
        .where(Acquisition.task_id == task_id, Acquisition.status.in_(ACTIVE_STATES))
        .values(status=AcquisitionState.CANCELLED.value, finished_at=datetime.now(UTC))
        .returning(Acquisition.task_id)
    )
    return result.scalar_one_or_none() is not None


async def measurements_of(session: AsyncSession, task_id: uuid.UUID) -> Sequence[Measurement]:
    result = await session.scalars(
        select(Measurement).where(Measurement.task_id == task_id).order_by(Measurement.websdr_id)
    )
    return result.all()


async def measurement_of(
    session: AsyncSession, task_id: uuid.UUID, station_id: str
) -> Measurement | None:
    result = await session.scalars(
        select(Measurement).where(
            Measurement.task_id == task_id, Measurement.websdr_id == station_id
        )
    )
    return result.first()


async def recent_sessions(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    state: str | None,
    approval: str | None,
) -> Sequence[tuple[Acquisition, int]]:
    delivered = (
        select(func.count(Measurement.id))
        .where(Measurement.task_id == Acquisition.task_id)
        .correlate(Acquisition)
        .scalar_subquery()
    )
    query = select(Acquisition, delivered).order_by(Acquisition.created_at.desc())
    if state:
        query = query.where(Acquisition.status == state)
    if approval:
        query = query.where(Acquisition.approval == approval)
    rows = await session.execute(query.limit(limit).offset(offset))
    return [(acquisition, int(count)) for acquisition, count in rows.all()]


async def in_progress_station_ids(session: AsyncSession) -> list[list[str]]:
    """The stations of every acquisition being recorded now."""
    rows = await session.scalars(
        select(Acquisition.station_ids).where(Acquisition.status == AcquisitionState.PROGRESS.value)
    )
    return [list(ids) for ids in rows.all()]


async def count_overdue(session: AsyncSession, *, grace_s: float) -> int:
    """Acquisitions in PROGRESS for longer than their duration plus ``grace_s`` (database clock)."""
    running_s = func.extract("epoch", func.now() - Acquisition.started_at)
    count = await session.scalar(
        select(func.count()).where(
            Acquisition.status == AcquisitionState.PROGRESS.value,
            running_s > Acquisition.duration_seconds + grace_s,
        )
    )
    return int(count or 0)


async def recent_finished(
    session: AsyncSession, *, limit: int
) -> Sequence[tuple[str, list[str], list[dict[str, str]]]]:
    """(status, station ids, receiver errors) of the latest SUCCESS/FAILED acquisitions, newest first."""
    rows = await session.execute(
        select(Acquisition.status, Acquisition.station_ids, Acquisition.errors)
        .where(
            Acquisition.status.in_((AcquisitionState.SUCCESS.value, AcquisitionState.FAILED.value))
        )
        .order_by(Acquisition.created_at.desc())
        .limit(limit)
    )
    return [(status, list(ids), list(errors)) for status, ids, errors in rows.all()]


# --- sync (worker) -----------------------------------------------------------------
def lock(session: Session, task_id: uuid.UUID) -> Acquisition | None:
    """The acquisition row, locked until the caller's transaction ends."""
    return session.scalars(
        select(Acquisition).where(Acquisition.task_id == task_id).with_for_update()
    ).one_or_none()


def status_of(session: Session, task_id: uuid.UUID) -> str | None:
    return session.scalar(select(Acquisition.status).where(Acquisition.task_id == task_id))


def record_receiver_finished(
    session: Session,
    task_id: uuid.UUID,
    *,
    progress: float,
    error: dict[str, str] | None,
) -> None:
    """Progress (and a receiver error, if any) while the task is still running."""
    values: dict[str, Any] = {"progress": progress}
    if error is not None:
        values["errors"] = Acquisition.errors.op("||")(literal([error], type_=JSONB))
    session.execute(
        update(Acquisition)
        .where(
            Acquisition.task_id == task_id,
            Acquisition.status == AcquisitionState.PROGRESS.value,
        )
        .values(**values)
    )


def delete_measurements(session: Session, task_id: uuid.UUID) -> int:
    result = session.execute(delete(Measurement).where(Measurement.task_id == task_id))
    return int(getattr(result, "rowcount", 0) or 0)


def add_measurements(session: Session, rows: Sequence[Measurement]) -> None:
    session.add_all(rows)
    session.flush()
