"""The transactional outbox: follow-up tasks written with the commit, published after it."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.repository.common import interval
from heimdall.models import OutboxMessage


async def unpublished(
    session: AsyncSession, older_than_s: float, limit: int = 100
) -> list[OutboxMessage]:
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.created_at < func.now() - interval(older_than_s))
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
