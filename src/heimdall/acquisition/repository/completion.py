"""Progress and the end of an acquisition: SUCCESS with its outbox message, or FAILED."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.repository.common import PROGRESS
from heimdall.models import (
    Acquisition,
    AcquisitionState,
    ChannelLease,
    Measurement,
    OutboxMessage,
    WebSDRStation,
)


async def record_receiver_finished(
    session: AsyncSession,
    task_id: uuid.UUID,
    holder: str,
    *,
    progress: float,
    errors: list[dict[str, str]],
) -> None:
    """Progress (never backwards: writes may land out of order) and receivers' errors,
    while the task is still running."""
    values: dict[str, Any] = {"progress": func.greatest(Acquisition.progress, progress)}
    if errors:
        values["errors"] = Acquisition.errors.op("||")(literal(errors, type_=JSONB))
    await session.execute(
        update(Acquisition)
        .where(
            Acquisition.task_id == task_id,
            Acquisition.status == PROGRESS,
            Acquisition.holder == holder,
        )
        .values(**values)
    )


async def _lock(session: AsyncSession, task_id: uuid.UUID) -> Acquisition | None:
    return (
        await session.scalars(
            select(Acquisition).where(Acquisition.task_id == task_id).with_for_update()
        )
    ).one_or_none()


async def commit_success(
    session: AsyncSession,
    task_id: uuid.UUID,
    holder: str,
    *,
    measurements: Sequence[dict[str, Any]],
    errors: list[dict[str, str]],
    result: dict[str, Any],
    then: tuple[str, list[Any]] | None,
    new_stations: Sequence[dict[str, Any]] = (),
) -> tuple[str, uuid.UUID | None]:
    """Measurements and SUCCESS in one transaction, with the follow-up task in the outbox.

    ``new_stations``: registry rows an import brings (its receivers unknown so far),
    created with the measurements that refer to them (one already there is kept).

    Returns the state the acquisition ends in (another one when it was cancelled or
    taken over meanwhile: nothing is written then) and the outbox message's id. Few
    round trips: the state changes only if still ours (no row lock read first), and no
    measurement can exist before this transaction writes them.
    """
    succeeded = await session.scalar(
        update(Acquisition)
        .where(
            Acquisition.task_id == task_id,
            Acquisition.status == PROGRESS,
            Acquisition.holder == holder,
        )
        .values(
            status=AcquisitionState.SUCCESS.value,
            progress=100.0,
            errors=errors,
            result=result,
            finished_at=func.now(),
            holder=None,
            claimed_until=None,
        )
        .returning(Acquisition.task_id)
    )
    if succeeded is None:
        status = await session.scalar(
            select(Acquisition.status).where(Acquisition.task_id == task_id)
        )
        return status or "UNKNOWN", None
    if new_stations:
        await session.execute(
            pg_insert(WebSDRStation).values(list(new_stations)).on_conflict_do_nothing()
        )
    if measurements:
        await session.execute(insert(Measurement), list(measurements))
    await session.execute(delete(ChannelLease).where(ChannelLease.task_id == task_id))
    message_id = None
    if then is not None:
        message_id = uuid.uuid4()
        await session.execute(
            insert(OutboxMessage).values(id=message_id, task_name=then[0], args=then[1])
        )
    return AcquisitionState.SUCCESS.value, message_id


async def mark_failed(
    session: AsyncSession, task_id: uuid.UUID, holder: str | None, message: str
) -> bool:
    """FAILED with nothing kept: no measurements, no leases; objects left to remove."""
    acquisition = await _lock(session, task_id)
    if acquisition is None or acquisition.state.finished:
        return False
    if holder is not None and acquisition.holder not in (None, holder):
        return False  # another attempt holds it now
    await session.execute(delete(Measurement).where(Measurement.task_id == task_id))
    await session.execute(delete(ChannelLease).where(ChannelLease.task_id == task_id))
    acquisition.status = AcquisitionState.FAILED.value
    acquisition.error_message = message
    acquisition.finished_at = datetime.now(UTC)
    acquisition.cleanup_pending = True
    acquisition.holder = None
    acquisition.claimed_until = None
    await session.flush()
    return True


async def mark_cleaned(session: AsyncSession, task_id: uuid.UUID) -> None:
    await session.execute(
        update(Acquisition).where(Acquisition.task_id == task_id).values(cleanup_pending=False)
    )
