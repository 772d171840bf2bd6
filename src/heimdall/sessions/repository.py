"""Queries behind session review. They flush at most; the endpoints commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.models import Acquisition, KnownSource, Localization, Measurement

Q = TypeVar("Q", bound=Select[Any])


@dataclass(frozen=True, slots=True)
class SessionFilter:
    state: str | None = None
    approval: str | None = None
    frequency_min_mhz: float | None = None
    frequency_max_mhz: float | None = None
    known_source_id: uuid.UUID | None = None

    def apply(self, query: Q) -> Q:
        if self.state is not None:
            query = query.where(Acquisition.status == self.state)
        if self.approval is not None:
            query = query.where(Acquisition.approval == self.approval)
        if self.frequency_min_mhz is not None:
            query = query.where(Acquisition.frequency_mhz >= self.frequency_min_mhz)
        if self.frequency_max_mhz is not None:
            query = query.where(Acquisition.frequency_mhz <= self.frequency_max_mhz)
        if self.known_source_id is not None:
            query = query.where(Acquisition.known_source_id == self.known_source_id)
        return query


@dataclass(frozen=True, slots=True)
class SessionRow:
    acquisition: Acquisition
    delivered: int
    known_source_name: str | None
    localization: Localization | None


async def page(
    session: AsyncSession, where: SessionFilter, *, limit: int, offset: int
) -> tuple[list[SessionRow], int]:
    """Newest first, one page, and how many sessions match in all."""
    delivered = (
        select(func.count(Measurement.id))
        .where(Measurement.task_id == Acquisition.task_id)
        .correlate(Acquisition)
        .scalar_subquery()
    )
    query = (
        select(Acquisition, delivered, KnownSource.name, Localization)
        .outerjoin(KnownSource, KnownSource.id == Acquisition.known_source_id)
        .outerjoin(Localization, Localization.task_id == Acquisition.task_id)
        .order_by(Acquisition.created_at.desc(), Acquisition.task_id)
    )
    rows = await session.execute(where.apply(query).limit(limit).offset(offset))
    total = await session.scalar(where.apply(select(func.count()).select_from(Acquisition)))
    items = [
        SessionRow(acquisition, int(count), name, localization)
        for acquisition, count, name, localization in rows.all()
    ]
    return items, int(total or 0)


async def get(session: AsyncSession, task_id: uuid.UUID) -> Acquisition | None:
    return await session.get(Acquisition, task_id)


async def measurements_of(session: AsyncSession, task_id: uuid.UUID) -> Sequence[Measurement]:
    result = await session.scalars(
        select(Measurement).where(Measurement.task_id == task_id).order_by(Measurement.websdr_id)
    )
    return result.all()


async def localization_of(session: AsyncSession, task_id: uuid.UUID) -> Localization | None:
    return await session.scalar(select(Localization).where(Localization.task_id == task_id))


async def set_review(
    session: AsyncSession,
    task_id: uuid.UUID,
    *,
    approval: str,
    allowed_states: Sequence[str],
    comment: str | None,
    reviewer: str | None,
) -> Acquisition | None:
    """Record the decision if the acquisition is in one of ``allowed_states``; else None.

    One conditional UPDATE: the state cannot change between the check and the write.
    """
    result = await session.execute(
        update(Acquisition)
        .where(Acquisition.task_id == task_id, Acquisition.status.in_(allowed_states))
        .values(
            approval=approval,
            review_note=comment,
            reviewed_by=reviewer,
            reviewed_at=func.now(),
        )
        .returning(Acquisition),
        execution_options={"populate_existing": True},
    )
    return result.scalar_one_or_none()


async def link_known_source(
    session: AsyncSession, task_id: uuid.UUID, known_source_id: uuid.UUID | None
) -> Acquisition | None:
    result = await session.execute(
        update(Acquisition)
        .where(Acquisition.task_id == task_id)
        .values(known_source_id=known_source_id)
        .returning(Acquisition),
        execution_options={"populate_existing": True},
    )
    return result.scalar_one_or_none()
