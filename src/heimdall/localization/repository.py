"""Queries on ``localizations`` and the active calibration. Flush at most."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from heimdall.models import Localization, Model

CALIBRATION_MODEL_NAME = "calibration"


async def get(session: AsyncSession, task_id: uuid.UUID) -> Localization | None:
    return await session.scalar(select(Localization).where(Localization.task_id == task_id))


def get_sync(session: Session, task_id: uuid.UUID) -> Localization | None:
    return session.scalar(select(Localization).where(Localization.task_id == task_id))


def replace(session: Session, localization: Localization) -> None:
    """Store the result of a task, replacing an earlier one (idempotent on redelivery)."""
    session.execute(delete(Localization).where(Localization.task_id == localization.task_id))
    session.add(localization)
    session.flush()


def active_calibration(session: Session) -> Model | None:
    return session.scalar(
        select(Model).where(Model.name == CALIBRATION_MODEL_NAME, Model.is_active)
    )
