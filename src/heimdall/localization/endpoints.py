"""HTTP API of the inference service."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.core.db import get_db_session, session_scope
from heimdall.core.errors import problems
from heimdall.core.security import rate_limited, require_token
from heimdall.core.settings import get_settings
from heimdall.core.storage import ObjectStore
from heimdall.localization import repository, service
from heimdall.localization.schemas import LocalizationOut, LocalizeRequest, to_out

router = APIRouter(prefix="/api/v1/inference", tags=["inference"])
Session = Annotated[AsyncSession, Depends(get_db_session)]


def _compute_and_store(task_id: uuid.UUID, method: str) -> uuid.UUID:
    settings = get_settings()
    with session_scope() as session:  # this unit of work commits here, for the request
        return service.compute(session, ObjectStore(settings), settings, task_id, method=method).id


@router.post(
    "/localize",
    response_model=LocalizationOut,
    dependencies=[Depends(require_token), Depends(rate_limited("localize"))],
    responses=problems(
        404, 409, s404="No such acquisition", s409="The acquisition cannot be localized"
    ),
)
async def localize(request: LocalizeRequest, session: Session) -> LocalizationOut:
    if not request.recompute:
        stored = await repository.get(session, request.task_id)
        # A stored fix answers "auto" or its own method; another method is computed.
        if stored is not None and request.method in ("auto", stored.method):
            return to_out(stored, with_surface=True)
    try:
        await asyncio.to_thread(_compute_and_store, request.task_id, request.method)
    except service.NotLocalizable as exc:
        code = (
            status.HTTP_404_NOT_FOUND if "no acquisition" in str(exc) else status.HTTP_409_CONFLICT
        )
        raise HTTPException(code, str(exc)) from exc
    stored = await repository.get(session, request.task_id)
    assert stored is not None
    return to_out(stored, with_surface=True)


@router.get("/localizations/{task_id}", response_model=LocalizationOut, responses=problems(404))
async def get_localization(
    task_id: uuid.UUID, session: Session, surface: bool = False
) -> LocalizationOut:
    stored = await repository.get(session, task_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no localization for task_id {task_id}")
    return to_out(stored, with_surface=surface)
