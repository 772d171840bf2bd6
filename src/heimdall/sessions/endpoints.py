"""Session review API (data-ingestion-web): under /api/v1/sessions, and /sessions for the page."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.core.bounds import FrequencyQuery, Offset
from heimdall.core.db import get_db_session
from heimdall.core.errors import problems
from heimdall.core.security import require_token
from heimdall.models import AcquisitionState, Approval
from heimdall.sessions import repository, service
from heimdall.sessions.schemas import (
    KnownSourceLink,
    ReviewOut,
    ReviewRequest,
    SessionDetail,
    SessionItem,
    SessionPage,
)

Session = Annotated[AsyncSession, Depends(get_db_session)]
OptionalReview = Annotated[ReviewRequest | None, Body()]

routes = APIRouter(tags=["sessions"])


def _not_found(exc: service.SessionNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


@routes.get("/recent", response_model=SessionPage)
async def recent(
    session: Session,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    state: AcquisitionState | None = None,
    approval: Approval | None = None,
    frequency_min_mhz: FrequencyQuery = None,
    frequency_max_mhz: FrequencyQuery = None,
    known_source_id: uuid.UUID | None = None,
) -> SessionPage:
    where = repository.SessionFilter(
        state=state.value if state else None,
        approval=approval.value if approval else None,
        frequency_min_mhz=frequency_min_mhz,
        frequency_max_mhz=frequency_max_mhz,
        known_source_id=known_source_id,
    )
    rows, total = await repository.page(session, where, limit=limit, offset=offset)
    items: list[SessionItem] = [service.item(r) for r in rows]
    return SessionPage(items=items, total=total, limit=limit, offset=offset)


@routes.get("/{task_id}", response_model=SessionDetail, responses=problems(404))
async def get_session(task_id: uuid.UUID, session: Session) -> SessionDetail:
    try:
        return await service.detail(session, task_id)
    except service.SessionNotFound as exc:
        raise _not_found(exc) from exc


async def _decide(
    session: AsyncSession, task_id: uuid.UUID, decision: Approval, body: ReviewRequest | None
) -> ReviewOut:
    try:
        async with session.begin():
            return await service.review(session, task_id, decision, body or ReviewRequest())
    except service.SessionNotFound as exc:
        raise _not_found(exc) from exc
    except service.ReviewConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


REVIEW_ERRORS = problems(404, 409, s409="The session's state does not allow this decision")


@routes.post(
    "/approve/{task_id}",
    response_model=ReviewOut,
    dependencies=[Depends(require_token)],
    responses=REVIEW_ERRORS,
)
async def approve(task_id: uuid.UUID, session: Session, body: OptionalReview = None) -> ReviewOut:
    """Approve a successful session: training may use it."""
    return await _decide(session, task_id, Approval.approved, body)


@routes.post(
    "/reject/{task_id}",
    response_model=ReviewOut,
    dependencies=[Depends(require_token)],
    responses=REVIEW_ERRORS,
)
async def reject(task_id: uuid.UUID, session: Session, body: OptionalReview = None) -> ReviewOut:
    """Reject a finished session: training never uses it."""
    return await _decide(session, task_id, Approval.rejected, body)


@routes.put(
    "/{task_id}/known-source",
    response_model=SessionDetail,
    dependencies=[Depends(require_token)],
    responses=problems(404, s422="Invalid request, or no known source with this id"),
)
async def link_known_source(
    task_id: uuid.UUID, link: KnownSourceLink, session: Session
) -> SessionDetail:
    """Say which known transmitter an acquisition recorded (or ``null``: none)."""
    try:
        async with session.begin():
            await service.link_known_source(session, task_id, link.known_source_id)
        return await service.detail(session, task_id)
    except service.SessionNotFound as exc:
        raise _not_found(exc) from exc
    except service.UnknownKnownSource as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


router = APIRouter()
router.include_router(routes, prefix="/api/v1/sessions")
# ARCHITECTURE names the page's endpoints /sessions/...; the same routes, once in the schema.
router.include_router(routes, prefix="/sessions", include_in_schema=False)
