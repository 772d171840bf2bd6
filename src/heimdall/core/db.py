"""Database engines and sessions.

Services use the async engine (FastAPI handlers never block); Celery tasks and
Alembic use the sync engine. Both speak psycopg 3. Whoever opens a session owns
the transaction: repositories and services flush, they never commit.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, func
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker

from heimdall.core.settings import get_settings

# Stable constraint names so Alembic autogenerate and `alembic check` agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as plain libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@lru_cache(maxsize=4)
def sync_engine(url: str | None = None) -> Engine:
    return create_engine(
        url or get_settings().sync_database_url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 3},
    )


# A pooled connection unused for longer than this is pinged before use.
IDLE_PING_S = 1.0


def ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that sat idle ``IDLE_PING_S``.

    A ping at every checkout is a round trip on every request (the trigger's included);
    a connection in use a moment ago is alive. After an outage every pooled connection
    has been idle for its length, so each is tested (and replaced) before a request
    gets it.
    """

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in_at", -math.inf) < IDLE_PING_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("ping failed")


@lru_cache(maxsize=4)
def async_engine(url: str | None = None) -> AsyncEngine:
    engine = create_async_engine(
        url or get_settings().sync_database_url,
        connect_args={"connect_timeout": 3},
    )
    ping_when_idle(engine.sync_engine)
    return engine


@contextmanager
def session_scope() -> Iterator[Session]:
    """A sync unit of work for tasks: commits on success, rolls back on error."""
    factory = sessionmaker(sync_engine(), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def async_session_scope() -> AsyncIterator[AsyncSession]:
    """An async unit of work: commits on success, rolls back on error."""
    factory = async_sessionmaker(async_engine(), expire_on_commit=False)
    async with factory() as session, session.begin():
        yield session


async def get_db_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, not yet in a transaction.

    Endpoints open the transaction (``async with session.begin():``) so that
    they, not services, decide when work is committed and what follows a commit
    (enqueueing a task, for one).
    """
    async with _sessions_for(async_engine())() as session:
        yield session


@lru_cache(maxsize=4)
def _sessions_for(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Built once per engine: requests only open sessions from it.
    return async_sessionmaker(engine, expire_on_commit=False)


# Shared column shapes (SQLAlchemy reads the mapped_column out of Annotated).
CreatedAt = Annotated[
    datetime,
    mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now()),
]
