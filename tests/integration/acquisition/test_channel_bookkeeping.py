"""Channel bookkeeping on PostgreSQL: releases and grants in one statement each, NOTIFYs
that say who sent them, progress that never moves backwards, and the bookkeeping
engine that does not wait for the WAL flush."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from heimdall.acquisition import repository
from heimdall.acquisition.channels import NOTIFY_CHANNEL, ChannelScheduler
from heimdall.acquisition.runtime import bookkeeping_engine
from heimdall.core.db import libpq_url
from heimdall.core.settings import Settings
from heimdall.models import Acquisition, ChannelLease

pytestmark = pytest.mark.usefixtures("clean_db")

CHANNELS = "SELECT id, channels FROM websdr_stations"


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = bookkeeping_engine(settings.sync_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def listener(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection]:
    conn = await psycopg.AsyncConnection.connect(
        libpq_url(settings.sync_database_url), autocommit=True
    )
    await conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(NOTIFY_CHANNEL)))
    yield conn
    await conn.close()


async def payloads(conn: psycopg.AsyncConnection, wait_s: float = 0.5) -> list[str]:
    """The NOTIFY payloads that arrive within ``wait_s``."""
    return [n.payload async for n in conn.notifies(timeout=wait_s)]


async def stations(session: AsyncSession) -> list[str]:
    return list(await session.scalars(text("SELECT id FROM websdr_stations ORDER BY id")))


async def add_acquisition(
    session: AsyncSession, station_ids: list[str], status: str, holder: str | None = "me"
) -> uuid.UUID:
    task_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO acquisitions (task_id, frequency_mhz, duration_seconds, station_ids,"
            " status, holder, claimed_until) VALUES (:t, 145.5, 2, CAST(:s AS jsonb), :st, :h,"
            " now() + interval '1 minute')"
        ),
        {"t": task_id, "s": repr(station_ids).replace("'", '"'), "st": status, "h": holder},
    )
    return task_id


async def add_leases(session: AsyncSession, task_id: uuid.UUID, station_ids: list[str]) -> None:
    for station_id in station_ids:
        await session.execute(
            text(
                "INSERT INTO channel_leases (task_id, station_id, expires_at)"
                " VALUES (:t, :s, now() + interval '1 minute')"
            ),
            {"t": task_id, "s": station_id},
        )


async def test_a_release_tells_the_others_who_sent_it_and_only_when_it_freed_a_channel(
    engine: AsyncEngine, listener: psycopg.AsyncConnection
) -> None:
    sessions = async_sessionmaker(engine)
    async with sessions() as session:
        first, second = (await stations(session))[:2]
        task_id = await add_acquisition(session, [first, second], "PROGRESS")
        await add_leases(session, task_id, [first, second])

        freed = await repository.release_lease_set(
            session, {(task_id, first)}, NOTIFY_CHANNEL, "worker-a"
        )
        assert freed and await payloads(listener) == ["worker-a"]
        # Gone already: nothing freed, no one woken for nothing.
        again = await repository.release_lease_set(
            session, {(task_id, first)}, NOTIFY_CHANNEL, "worker-a"
        )
        assert not again and await payloads(listener) == []

        assert await repository.release_leases(session, {task_id: None}, NOTIFY_CHANNEL, "b")
        assert await payloads(listener) == ["b"]
        assert not await repository.release_leases(session, {task_id: None}, NOTIFY_CHANNEL, "b")
        assert await payloads(listener) == []
        leases = await session.scalar(select(ChannelLease.task_id).limit(1))
        assert leases is None


async def test_a_grant_pass_reads_what_the_separate_queries_read_and_starts_the_granted(
    settings: Settings, engine: AsyncEngine, listener: psycopg.AsyncConnection
) -> None:
    async with async_sessionmaker(engine)() as session:
        ids = await stations(session)
        running = await add_acquisition(session, ids[:2], "PROGRESS")
        await add_leases(session, running, ids[:2])
        older = await add_acquisition(session, ids[:1], "PENDING")
        await asyncio.sleep(0.01)  # created_at orders the waiters
        newer = await add_acquisition(session, ids[1:3], "PENDING")
        await add_acquisition(session, ids[:1], "PENDING", holder=None)  # not claimed

    # Grants are durable: a transaction on an ordinary engine, as the worker's.
    durable = create_async_engine(settings.sync_database_url)
    try:
        async with async_sessionmaker(durable)() as session, session.begin():
            waiters, free = await repository.waiters_and_free_channels(session)
            assert waiters == await repository.claimed_waiters(session)
            assert free == await repository.free_channels(session)
            assert [task_id for task_id, _ in waiters] == [older, newer]
            channels = {row[0]: row[1] for row in await session.execute(text(CHANNELS))}
            # The running acquisition holds a channel of ids[0] and ids[1], none of ids[2].
            assert (free[ids[0]], free[ids[2]]) == (channels[ids[0]] - 1, channels[ids[2]])

        scheduler = ChannelScheduler(durable, lease_ttl_s=20, bookkeeping=engine)
        granted = await scheduler.grant_pass()
        # Nothing left to grant afterwards: a pass writes nothing and tells no one.
        assert await scheduler.grant_pass() == []
    finally:
        await durable.dispose()
    assert set(granted) == {older, newer}
    assert await payloads(listener) == [scheduler.identity]  # once: the second pass said nothing
    async with async_sessionmaker(engine)() as session:
        started = {
            row.task_id: row.status
            for row in await session.execute(select(Acquisition.task_id, Acquisition.status))
        }
        assert started[older] == started[newer] == "PROGRESS"
        leased = (
            await session.execute(select(ChannelLease.task_id, ChannelLease.station_id))
        ).all()
        assert {(older, ids[0]), (newer, ids[1]), (newer, ids[2])} <= set(leased)


async def test_a_scheduler_is_not_woken_by_its_own_notify(engine: AsyncEngine) -> None:
    scheduler = ChannelScheduler(engine, lease_ttl_s=20)
    listening = asyncio.create_task(scheduler._listen())
    try:
        # It wakes itself once it listens (anything may have changed meanwhile).
        async with asyncio.timeout(10):
            await scheduler._wake.wait()
        scheduler._wake.clear()
        async with engine.connect() as conn:
            await conn.execute(
                text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": scheduler.identity}
            )
            await asyncio.sleep(0.5)
            assert not scheduler._wake.is_set()
            await conn.execute(
                text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": "another-process"}
            )
            async with asyncio.timeout(5):
                await scheduler._wake.wait()
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


async def test_progress_never_moves_backwards_and_keeps_every_error(engine: AsyncEngine) -> None:
    async with async_sessionmaker(engine)() as session:
        ids = await stations(session)
        task_id = await add_acquisition(session, ids[:3], "PROGRESS")
        one = {"station_id": ids[0], "error": "offline"}
        two = {"station_id": ids[1], "error": "too busy"}
        await repository.record_receiver_finished(
            session, task_id, "me", progress=66.7, errors=[one]
        )
        # Written out of order: the later, smaller count lands last.
        await repository.record_receiver_finished(
            session, task_id, "me", progress=33.3, errors=[two]
        )
        # Another holder's write changes nothing.
        await repository.record_receiver_finished(
            session, task_id, "someone-else", progress=100.0, errors=[]
        )
        row = (
            await session.execute(
                select(Acquisition.progress, Acquisition.errors).where(
                    Acquisition.task_id == task_id
                )
            )
        ).one()
        assert row.progress == pytest.approx(66.7)
        assert row.errors == [one, two]


async def test_the_bookkeeping_engine_does_not_wait_for_the_wal_flush(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        assert await conn.scalar(text("SHOW synchronous_commit")) == "off"
        # Autocommit: every statement is its own transaction (no BEGIN/COMMIT round
        # trips), so the transaction starts with the statement.
        await conn.execute(text("SELECT 1"))
        assert await conn.scalar(text("SELECT now() = statement_timestamp()"))
