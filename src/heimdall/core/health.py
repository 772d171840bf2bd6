"""Dependency checks behind every service's ``GET /ready``.

Each check is async and bounded in time; blocking client libraries run in a
thread so the event loop never stalls while a dependency hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import redis.asyncio as aioredis
from kombu import Connection
from sqlalchemy import text

from heimdall.core.db import async_engine
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore

CHECK_TIMEOUT_S = 3.0
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DependencyCheck:
    name: str
    probe: Callable[[], Awaitable[None]]


async def _postgres() -> None:
    async with async_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis() -> None:
    client = aioredis.from_url(get_settings().redis_url.get_secret_value(), socket_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _broker_blocking() -> None:
    with Connection(get_settings().broker_url.get_secret_value(), connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


async def _broker() -> None:
    await asyncio.to_thread(_broker_blocking)


async def _object_store() -> None:
    await asyncio.to_thread(ObjectStore(timeout_s=2).ping)


POSTGRES = DependencyCheck("PostgreSQL", _postgres)
REDIS = DependencyCheck("Redis", _redis)
RABBITMQ = DependencyCheck("RabbitMQ", _broker)
OBJECT_STORE = DependencyCheck("S3 object storage", _object_store)


def upstream(name: str, base_url: str) -> DependencyCheck:
    async def probe() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"{base_url}/health")
            response.raise_for_status()

    return DependencyCheck(name, probe)


async def run_checks(checks: list[DependencyCheck]) -> dict[str, str]:
    """Run every check concurrently; map each name to "ok" or the reason it failed."""

    async def one(check: DependencyCheck) -> tuple[str, str]:
        try:
            await asyncio.wait_for(check.probe(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return check.name, f"no answer within {CHECK_TIMEOUT_S:.0f} s"
        except Exception as exc:  # any failure is "not ready"
            # The answer names the dependency, never the exception's text (it can carry
            # addresses, user names, library internals); the log has the type.
            log.warning("readiness check of %s failed: %s", check.name, type(exc).__name__)
            return check.name, "down"
        return check.name, "ok"

    return dict(await asyncio.gather(*(one(c) for c in checks)))
