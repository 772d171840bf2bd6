"""The sweeper's queries: deadlines, lapsed leases, orphans, objects left to remove."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.repository.common import ACTIVE_STATES, SWEEPER_LOCK_KEY, interval
from heimdall.models import Acquisition, AcquisitionState, ChannelLease, Measurement


async def try_lock_sweeper(session: AsyncSession) -> bool:
    """One sweeper at a time across processes, for the rest of this transaction."""
    return bool(
        await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SWEEPER_LOCK_KEY}
        )
    )


async def fail_past_deadline(
    session: AsyncSession, messages: dict[str, str]
) -> list[tuple[uuid.UUID, str]]:
    """FAIL every unfinished acquisition past its deadline; (task_id, state it was in)."""
    stuck = (
        await session.execute(
            select(Acquisition.task_id, Acquisition.status)
            .where(Acquisition.status.in_(ACTIVE_STATES), Acquisition.deadline_at < func.now())
            .with_for_update(skip_locked=True)
        )
    ).all()
    for task_id, status in stuck:
        await session.execute(delete(Measurement).where(Measurement.task_id == task_id))
        await session.execute(delete(ChannelLease).where(ChannelLease.task_id == task_id))
        await session.execute(
            update(Acquisition)
            .where(Acquisition.task_id == task_id)
            .values(
                status=AcquisitionState.FAILED.value,
                error_message=messages[status],
                finished_at=func.now(),
                cleanup_pending=True,
                holder=None,
                claimed_until=None,
            )
        )
    return [(task_id, status) for task_id, status in stuck]


async def drop_lapsed_leases(session: AsyncSession) -> None:
    """Leases nobody renews any more (their worker died), and those of finished acquisitions
    no live task holds."""
    finished_unheld = select(Acquisition.task_id).where(
        Acquisition.status.not_in(ACTIVE_STATES),
        or_(Acquisition.holder.is_(None), Acquisition.claimed_until < func.now()),
    )
    await session.execute(
        delete(ChannelLease).where(
            or_(ChannelLease.expires_at < func.now(), ChannelLease.task_id.in_(finished_unheld))
        )
    )


async def orphans(
    session: AsyncSession, *, grace_s: float, unclaimed_after_s: float, hold_off_s: float
) -> list[uuid.UUID]:
    """Unfinished acquisitions no live task holds, to publish again (then left alone a while).

    Either their holder stopped renewing its claim, or no task ever claimed them
    long after they were requested (their message was lost).
    """
    rows = await session.scalars(
        select(Acquisition.task_id)
        .where(
            Acquisition.status.in_(ACTIVE_STATES),
            or_(
                Acquisition.claimed_until < func.now() - interval(grace_s),
                and_(
                    Acquisition.claimed_until.is_(None),
                    Acquisition.created_at < func.now() - interval(unclaimed_after_s),
                ),
            ),
        )
        .with_for_update(skip_locked=True)
    )
    task_ids = list(rows)
    if task_ids:
        # No holder, but not looked at again before hold_off_s: the message needs time.
        await session.execute(
            update(Acquisition)
            .where(Acquisition.task_id.in_(task_ids))
            .values(holder=None, claimed_until=func.now() + interval(hold_off_s))
        )
    return task_ids


async def cleanup_candidates(session: AsyncSession, limit: int = 50) -> list[uuid.UUID]:
    """Finished acquisitions whose objects may remain and that no live task holds."""
    rows = await session.scalars(
        select(Acquisition.task_id)
        .where(
            Acquisition.cleanup_pending,
            Acquisition.status.in_(
                (AcquisitionState.FAILED.value, AcquisitionState.CANCELLED.value)
            ),
            or_(Acquisition.holder.is_(None), Acquisition.claimed_until < func.now()),
        )
        .limit(limit)
    )
    return list(rows)
