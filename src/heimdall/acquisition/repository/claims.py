"""A task attempt's hold on an acquisition: claim, renew, release, start over."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.repository.common import ACTIVE_STATES, PENDING, PROGRESS, interval
from heimdall.models import Acquisition, AcquisitionSource, ChannelLease, Measurement


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a task attempt needs of the acquisition it now holds."""

    task_id: uuid.UUID
    status: str
    station_ids: list[str]
    frequency_mhz: float
    duration_seconds: float
    description: str | None
    deadline_at: datetime | None
    source: str = AcquisitionSource.live.value


async def claim(
    session: AsyncSession, task_id: uuid.UUID, holder: str, ttl_s: float
) -> Claimed | None:
    """Hold an unfinished acquisition nobody else holds (or whose holder stopped renewing)."""
    row = (
        await session.execute(
            update(Acquisition)
            .where(
                Acquisition.task_id == task_id,
                Acquisition.status.in_(ACTIVE_STATES),
                or_(
                    Acquisition.holder.is_(None),
                    Acquisition.claimed_until.is_(None),
                    Acquisition.claimed_until < func.now(),
                ),
            )
            .values(holder=holder, claimed_until=func.now() + interval(ttl_s))
            .returning(
                Acquisition.status,
                Acquisition.station_ids,
                Acquisition.frequency_mhz,
                Acquisition.duration_seconds,
                Acquisition.description,
                Acquisition.deadline_at,
                Acquisition.source,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return Claimed(task_id, *row)


@dataclass(frozen=True, slots=True)
class State:
    status: str
    holder: str | None
    cleanup_pending: bool = False


async def claim_state(session: AsyncSession, task_id: uuid.UUID) -> State | None:
    row = (
        await session.execute(
            select(Acquisition.status, Acquisition.holder, Acquisition.cleanup_pending).where(
                Acquisition.task_id == task_id
            )
        )
    ).one_or_none()
    return None if row is None else State(row.status, row.holder, row.cleanup_pending)


async def start_import(session: AsyncSession, task_id: uuid.UUID, holder: str) -> bool:
    """An import starts at once (it waits for no channel): PROGRESS, if still ours."""
    started = await session.scalar(
        update(Acquisition)
        .where(
            Acquisition.task_id == task_id,
            Acquisition.holder == holder,
            Acquisition.status.in_(ACTIVE_STATES),
        )
        .values(status=PROGRESS, started_at=func.now(), progress=0.0, errors=[])
        .returning(Acquisition.task_id)
    )
    return started is not None


async def restart_from_pending(session: AsyncSession, task_id: uuid.UUID, holder: str) -> None:
    """A redelivered attempt starts over: no leases, no measurements, waiting again."""
    await session.execute(delete(ChannelLease).where(ChannelLease.task_id == task_id))
    await session.execute(delete(Measurement).where(Measurement.task_id == task_id))
    await session.execute(
        update(Acquisition)
        .where(Acquisition.task_id == task_id, Acquisition.holder == holder)
        .values(status=PENDING, progress=0.0, errors=[], started_at=None)
    )


async def renew(session: AsyncSession, claims: dict[uuid.UUID, str], ttl_s: float) -> None:
    """Push the expiry of these (task_id -> holder) claims and of their channel leases."""
    until = func.now() + interval(ttl_s)
    for task_id, holder in claims.items():
        await session.execute(
            update(Acquisition)
            .where(Acquisition.task_id == task_id, Acquisition.holder == holder)
            .values(claimed_until=until)
        )
    await session.execute(
        update(ChannelLease).where(ChannelLease.task_id.in_(list(claims))).values(expires_at=until)
    )


async def states(session: AsyncSession, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, State]:
    rows = await session.execute(
        select(Acquisition.task_id, Acquisition.status, Acquisition.holder).where(
            Acquisition.task_id.in_(task_ids)
        )
    )
    return {row.task_id: State(row.status, row.holder) for row in rows}


async def release_claim(session: AsyncSession, task_id: uuid.UUID, holder: str) -> None:
    await session.execute(
        update(Acquisition)
        .where(Acquisition.task_id == task_id, Acquisition.holder == holder)
        .values(holder=None, claimed_until=None)
    )
