"""What the API asks of acquisitions: reads, the trigger's INSERT, cancel, queue position."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Insert, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.repository.common import ACTIVE_STATES, LIVE, PENDING
from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState, Measurement


async def get(session: AsyncSession, task_id: uuid.UUID) -> Acquisition | None:
    return await session.get(Acquisition, task_id)


async def cancel_if_active(session: AsyncSession, task_id: uuid.UUID) -> bool:
    """Atomically move an unfinished acquisition to CANCELLED; False if it had finished."""
    result = await session.execute(
        update(Acquisition)
        .where(Acquisition.task_id == task_id, Acquisition.status.in_(ACTIVE_STATES))
        .values(
            status=AcquisitionState.CANCELLED.value,
            finished_at=datetime.now(UTC),
            # Objects may exist; whoever holds the task (or the sweeper) removes them.
            cleanup_pending=True,
        )
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
    session: AsyncSession, *, limit: int, offset: int, state: str | None, approval: str | None
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
        select(Acquisition.station_ids).where(
            Acquisition.status == AcquisitionState.PROGRESS.value, LIVE
        )
    )
    return [list(ids) for ids in rows.all()]


async def count_overdue(session: AsyncSession, *, grace_s: float) -> int:
    """Acquisitions in PROGRESS for longer than their duration plus ``grace_s`` (database clock)."""
    running_s = func.extract("epoch", func.now() - Acquisition.started_at)
    count = await session.scalar(
        select(func.count()).where(
            Acquisition.status == AcquisitionState.PROGRESS.value,
            LIVE,
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
            Acquisition.status.in_((AcquisitionState.SUCCESS.value, AcquisitionState.FAILED.value)),
            LIVE,
        )
        .order_by(Acquisition.created_at.desc())
        .limit(limit)
    )
    return [(status, list(ids), list(errors)) for status, ids, errors in rows.all()]


_TABLE = cast(Table, Acquisition.__table__)


@functools.cache
def _insert_new(columns: tuple[str, ...]) -> Insert:
    """The INSERT of an acquisition setting ``columns`` (every other column takes its
    server default), built once per column set: a live trigger and an import set
    different columns. Built per request (Core, with its values), the statement cost its
    cache key and coercions again on every trigger, ~0.5 ms of CPU on its hot path."""
    return (
        pg_insert(_TABLE)
        .values({name: bindparam(name, type_=_TABLE.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=[_TABLE.c.idempotency_key])
        .returning(_TABLE.c.task_id)
    )


async def insert_new(session: AsyncSession, acquisition: Acquisition) -> bool:
    """One INSERT; False when its Idempotency-Key is already taken (nothing inserted)."""
    values = {
        column.key: value
        for column in _TABLE.columns
        if (value := getattr(acquisition, column.key, None)) is not None
    }
    inserted = await session.execute(_insert_new(tuple(values)), values)
    return inserted.scalar_one_or_none() is not None


async def remove(session: AsyncSession, task_id: uuid.UUID) -> None:
    await session.execute(delete(Acquisition).where(Acquisition.task_id == task_id))


async def by_idempotency_key(session: AsyncSession, key: str) -> Acquisition | None:
    return await session.scalar(select(Acquisition).where(Acquisition.idempotency_key == key))


async def queue_position(session: AsyncSession, acquisition: Acquisition) -> int | None:
    """1 + the waiting acquisitions requested earlier that need one of the same receivers."""
    if acquisition.status != PENDING or acquisition.source != AcquisitionSource.live.value:
        return None
    ahead = await session.scalar(
        select(func.count())
        .select_from(Acquisition)
        .where(
            Acquisition.status == PENDING,
            LIVE,
            Acquisition.created_at < acquisition.created_at,
            Acquisition.station_ids.op("?|")(array(acquisition.station_ids)),
        )
    )
    return 1 + int(ahead or 0)
