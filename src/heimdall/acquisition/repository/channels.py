"""Receiver channels, the scheduled resource: leases granted and released, with a NOTIFY."""

from __future__ import annotations

import uuid

from sqlalchemy import (
    Delete,
    Insert,
    Select,
    Update,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.repository.common import (
    CHANNEL_LOCK_KEY,
    LIVE,
    PENDING,
    PROGRESS,
    interval,
)
from heimdall.models import Acquisition, ChannelLease, WebSDRStation


async def lock_channel_bookkeeping(session: AsyncSession) -> None:
    """Serialise grant passes (every process's) until this transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANNEL_LOCK_KEY})


async def claimed_waiters(session: AsyncSession) -> list[tuple[uuid.UUID, list[str]]]:
    """PENDING acquisitions held by a live task, oldest request first (rows locked)."""
    rows = await session.execute(_claimed_waiters_query().with_for_update())
    return [(row.task_id, list(row.station_ids)) for row in rows]


def _claimed_waiters_query() -> Select[uuid.UUID, list[str]]:
    return (
        select(Acquisition.task_id, Acquisition.station_ids)
        .where(
            Acquisition.status == PENDING,
            LIVE,
            Acquisition.holder.is_not(None),
            Acquisition.claimed_until > func.now(),
        )
        .order_by(Acquisition.created_at, Acquisition.task_id)
    )


def _free_channels_query() -> Select[str, int]:
    held = (
        select(ChannelLease.station_id, func.count().label("held"))
        .where(ChannelLease.expires_at > func.now())
        .group_by(ChannelLease.station_id)
        .subquery()
    )
    return (
        select(
            WebSDRStation.id,
            (WebSDRStation.channels - func.coalesce(held.c.held, 0)).label("free"),
        )
        .outerjoin(held, held.c.station_id == WebSDRStation.id)
        .where(WebSDRStation.active)
    )


async def free_channels(session: AsyncSession) -> dict[str, int]:
    """Channels of each active receiver not held by a live lease (the sweeper drops lapsed ones)."""
    rows = await session.execute(_free_channels_query())
    return {station_id: int(free) for station_id, free in rows}


async def waiters_and_free_channels(
    session: AsyncSession,
) -> tuple[list[tuple[uuid.UUID, list[str]]], dict[str, int]]:
    """:func:`claimed_waiters` and :func:`free_channels` in one round trip (a grant
    pass is on the path from one wave to the next). Call it after taking the lock:
    its snapshot then holds every lease of the passes before."""
    free = _free_channels_query().subquery()
    free_by_station = (
        select(func.jsonb_object_agg(free.c.id, free.c.free)).select_from(free).scalar_subquery()
    )
    rows = (
        await session.execute(
            _claimed_waiters_query()
            .add_columns(free_by_station.label("free"))
            .with_for_update(of=Acquisition)
        )
    ).all()
    if not rows:
        return [], {}
    return (
        [(row.task_id, list(row.station_ids)) for row in rows],
        {station_id: int(n) for station_id, n in (rows[0].free or {}).items()},
    )


async def start_granted(
    session: AsyncSession,
    granted: dict[uuid.UUID, tuple[str, ...]],
    ttl_s: float,
    notify_channel: str,
    sender: str = "",
) -> None:
    """Lease the channels of the granted acquisitions, mark them PROGRESS and tell the
    other processes: one statement."""
    until = func.now() + interval(ttl_s)
    leased = insert(ChannelLease).values(
        [
            {"task_id": task_id, "station_id": station_id, "expires_at": until}
            for task_id, station_ids in granted.items()
            for station_id in station_ids
        ]
    )
    started = (
        update(Acquisition)
        .where(Acquisition.task_id.in_(list(granted)), Acquisition.status == PENDING)
        .values(status=PROGRESS, started_at=func.now(), progress=0.0)
    )
    await _notify_after(session, notify_channel, sender, leased, started)


async def release_leases(
    session: AsyncSession,
    leases: dict[uuid.UUID, str | None],
    notify_channel: str,
    sender: str = "",
) -> bool:
    """Delete leases (task_id -> one station, or None for all of the task's); whether
    any was there (the other processes were told then)."""
    conditions = [
        ChannelLease.task_id == task_id
        if station_id is None
        else and_(ChannelLease.task_id == task_id, ChannelLease.station_id == station_id)
        for task_id, station_id in leases.items()
    ]
    return await _notify_after(
        session, notify_channel, sender, delete(ChannelLease).where(or_(*conditions))
    )


async def release_lease_set(
    session: AsyncSession, leases: set[tuple[uuid.UUID, str]], notify_channel: str, sender: str = ""
) -> bool:
    """Delete these leases; whether any was there (the others were told then)."""
    if not leases:
        return False
    released = delete(ChannelLease).where(
        tuple_(ChannelLease.task_id, ChannelLease.station_id).in_(list(leases))
    )
    return await _notify_after(session, notify_channel, sender, released)


async def full_stations(session: AsyncSession, station_ids: list[str]) -> list[str]:
    """Which of these receivers have no free channel now."""
    free = await free_channels(session)
    return [s for s in station_ids if free.get(s, 0) <= 0]


async def _notify_after(
    session: AsyncSession, channel: str, sender: str, *changes: Insert | Update | Delete
) -> bool:
    """The changes, and a NOTIFY saying who made them if they changed a row, in one
    statement: one round trip, not one each. Whether a row changed (a release of
    leases already gone wakes no one: a grant pass for nothing delays the next one)."""
    ctes = [change.returning(literal(1)).cte(f"change_{n}") for n, change in enumerate(changes)]
    changed = union_all(*(select(literal(1)).select_from(cte) for cte in ctes)).subquery()
    notified = await session.execute(
        select(func.pg_notify(channel, sender)).select_from(select(changed).limit(1).subquery())
    )
    return notified.first() is not None
