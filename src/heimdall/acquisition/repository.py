"""Queries on acquisitions, measurements and channel leases. They flush at most; callers commit.

The API side reads and cancels; the worker side (all async, on the acquisition
runtime's event loop) claims, schedules channels, records progress and finishes.
Claims and leases carry expiry times compared with PostgreSQL's own clock.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Delete,
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
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
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.models import (
    Acquisition,
    AcquisitionSource,
    AcquisitionState,
    ChannelLease,
    Measurement,
    OutboxMessage,
    WebSDRStation,
)

PENDING = AcquisitionState.PENDING.value
PROGRESS = AcquisitionState.PROGRESS.value
ACTIVE_STATES = (PENDING, PROGRESS)
# Imports hold no receiver channels and say nothing about the receivers' health now.
LIVE = Acquisition.source == AcquisitionSource.live.value
# Advisory lock keys: channel grant passes, and the sweeper.
CHANNEL_LOCK_KEY = 0x48454D4401
SWEEPER_LOCK_KEY = 0x48454D4402


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


# --- async (API) -----------------------------------------------------------------
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


# --- worker: claims ------------------------------------------------------------------


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
            .values(holder=holder, claimed_until=func.now() + _seconds(ttl_s))
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
    until = func.now() + _seconds(ttl_s)
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


# --- worker: channels ----------------------------------------------------------------


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
    until = func.now() + _seconds(ttl_s)
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
    session: AsyncSession,
    leases: set[tuple[uuid.UUID, str]],
    notify_channel: str,
    sender: str = "",
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


# --- worker: progress and the end of an acquisition -------------------------------------


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


# --- sweeper ---------------------------------------------------------------------------


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
                Acquisition.claimed_until < func.now() - _seconds(grace_s),
                and_(
                    Acquisition.claimed_until.is_(None),
                    Acquisition.created_at < func.now() - _seconds(unclaimed_after_s),
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
            .values(holder=None, claimed_until=func.now() + _seconds(hold_off_s))
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


# --- outbox ----------------------------------------------------------------------------


async def unpublished(
    session: AsyncSession, older_than_s: float, limit: int = 100
) -> list[OutboxMessage]:
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.created_at < func.now() - _seconds(older_than_s))
        .order_by(OutboxMessage.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def published(session: AsyncSession, message_id: uuid.UUID) -> None:
    await session.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))


async def publish_failed(session: AsyncSession, message_id: uuid.UUID, error: str) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(attempts=OutboxMessage.attempts + 1, last_error=error[:500])
    )
