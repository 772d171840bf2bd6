"""Queries on ``websdr_stations``. Flushes at most; the caller commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, true
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from heimdall.models import (
    Acquisition,
    AcquisitionSource,
    AcquisitionState,
    ChannelLease,
    WebSDRStation,
)
from heimdall.stations.schemas import StationIn


def upsert_statement(stations: Sequence[StationIn]) -> Insert:
    rows = [s.model_dump(mode="json") for s in stations]
    statement = insert(WebSDRStation).values(rows)
    return statement.on_conflict_do_update(
        index_elements=[WebSDRStation.id],
        set_={column: statement.excluded[column] for column in rows[0] if column != "id"},
    )


def upsert_many(session: Session, stations: Sequence[StationIn]) -> None:
    session.execute(upsert_statement(stations))


async def list_active(session: AsyncSession) -> Sequence[WebSDRStation]:
    result = await session.scalars(
        select(WebSDRStation).where(WebSDRStation.active).order_by(WebSDRStation.id)
    )
    return result.all()


async def all_stations(session: AsyncSession) -> Sequence[WebSDRStation]:
    return (await session.scalars(select(WebSDRStation).order_by(WebSDRStation.id))).all()


async def get_many(session: AsyncSession, station_ids: Sequence[str]) -> Sequence[WebSDRStation]:
    result = await session.scalars(
        select(WebSDRStation).where(WebSDRStation.id.in_(station_ids)).order_by(WebSDRStation.id)
    )
    return result.all()


def get_many_sync(session: Session, station_ids: Sequence[str]) -> Sequence[WebSDRStation]:
    return session.scalars(
        select(WebSDRStation).where(WebSDRStation.id.in_(station_ids)).order_by(WebSDRStation.id)
    ).all()


async def recording_now(session: AsyncSession) -> dict[str, uuid.UUID]:
    """Station id -> the acquisition in PROGRESS that records it."""
    rows = await session.execute(
        select(Acquisition.task_id, Acquisition.station_ids)
        .where(
            Acquisition.status == AcquisitionState.PROGRESS.value,
            # An import records nothing: its receivers are not busy.
            Acquisition.source == AcquisitionSource.live.value,
        )
        .order_by(Acquisition.started_at)
    )
    return {station: task_id for task_id, stations in rows.all() for station in stations}


async def last_finished(
    session: AsyncSession,
) -> Sequence[tuple[str, uuid.UUID | None, list[dict[str, str]] | None, datetime | None]]:
    """Per active station: its last SUCCESS or FAILED acquisition (task, errors, end)."""
    last = (
        select(Acquisition.task_id, Acquisition.errors, Acquisition.finished_at)
        .where(
            Acquisition.station_ids.has_key(WebSDRStation.id),
            Acquisition.status.in_([AcquisitionState.SUCCESS.value, AcquisitionState.FAILED.value]),
            Acquisition.source == AcquisitionSource.live.value,
        )
        .order_by(Acquisition.finished_at.desc().nulls_last())
        .limit(1)
        .correlate(WebSDRStation)
        .lateral("last")
    )
    rows = await session.execute(
        select(WebSDRStation.id, last.c.task_id, last.c.errors, last.c.finished_at)
        .outerjoin(last, true())
        .where(WebSDRStation.active)
        .order_by(WebSDRStation.id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def channels_held(session: AsyncSession) -> dict[str, int]:
    """Channels held on each receiver now: leases that have not expired."""
    rows = await session.execute(
        select(ChannelLease.station_id, func.count())
        .where(ChannelLease.expires_at > func.now())
        .group_by(ChannelLease.station_id)
    )
    return {station_id: int(count) for station_id, count in rows.all()}
