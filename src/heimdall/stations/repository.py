"""Queries on ``websdr_stations``. Flushes at most; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from heimdall.models import WebSDRStation
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
