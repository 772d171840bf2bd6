"""Review use cases: read sessions, record approve / reject decisions, link known sources.

Services flush; the endpoints own the transaction. The decision stored on the
acquisition is what training reads: only approved sessions ever feed a fit.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.acquisition.schemas import AcquisitionStatus, MeasurementOut
from heimdall.localization.schemas import to_out
from heimdall.models import Acquisition, AcquisitionSource, AcquisitionState, Approval, KnownSource
from heimdall.sessions import repository
from heimdall.sessions.schemas import (
    LocalizationSummary,
    ReviewFields,
    ReviewOut,
    ReviewRequest,
    SessionDetail,
    SessionItem,
)
from heimdall.training.schemas import KnownSourceOut

#: The states in which each decision may be taken. Approval feeds training, so only a
#: session that recorded something is eligible; any finished session can be rejected.
DECIDABLE_STATES = {
    Approval.approved: (AcquisitionState.SUCCESS.value,),
    Approval.rejected: (
        AcquisitionState.SUCCESS.value,
        AcquisitionState.FAILED.value,
        AcquisitionState.CANCELLED.value,
    ),
}


class SessionNotFound(LookupError):
    pass


class ReviewConflict(ValueError):
    """The session is in a state in which the decision cannot be taken."""


class UnknownKnownSource(ValueError):
    pass


async def review(
    session: AsyncSession, task_id: uuid.UUID, decision: Approval, request: ReviewRequest
) -> ReviewOut:
    """Record ``decision``; a later decision replaces an earlier one."""
    allowed = DECIDABLE_STATES[decision]
    updated = await repository.set_review(
        session,
        task_id,
        approval=decision.value,
        allowed_states=allowed,
        comment=request.comment,
        reviewer=request.reviewer,
    )
    if updated is None:
        acquisition = await repository.get(session, task_id)
        if acquisition is None:
            raise SessionNotFound(f"no acquisition with task_id {task_id}")
        verb = "approve" if decision is Approval.approved else "reject"
        raise ReviewConflict(
            f"cannot {verb} acquisition {task_id}: it is {acquisition.status}; "
            f"only {' or '.join(allowed)} sessions can be {decision.value}"
        )
    return review_out(updated)


def review_out(a: Acquisition) -> ReviewOut:
    return ReviewOut(task_id=a.task_id, **ReviewFields.fields_of(a))


async def link_known_source(
    session: AsyncSession, task_id: uuid.UUID, known_source_id: uuid.UUID | None
) -> Acquisition:
    if known_source_id is not None and await session.get(KnownSource, known_source_id) is None:
        raise UnknownKnownSource(f"no known source with id {known_source_id}")
    updated = await repository.link_known_source(session, task_id, known_source_id)
    if updated is None:
        raise SessionNotFound(f"no acquisition with task_id {task_id}")
    return updated


def item(row: repository.SessionRow) -> SessionItem:
    a, fix = row.acquisition, row.localization
    return SessionItem(
        task_id=a.task_id,
        frequency_mhz=a.frequency_mhz,
        duration_seconds=a.duration_seconds,
        status=a.state,
        progress=a.progress,
        websdr_count=row.delivered,
        stations=a.station_ids,
        timestamp=a.created_at,
        **ReviewFields.fields_of(a),
        known_source_id=a.known_source_id,
        known_source_name=row.known_source_name,
        description=a.description,
        source=AcquisitionSource(a.source),
        localization=None
        if fix is None
        else LocalizationSummary(
            status=fix.status,
            method=fix.method,
            latitude=fix.latitude,
            longitude=fix.longitude,
            semi_major_m=fix.semi_major_m,
            semi_minor_m=fix.semi_minor_m,
            orientation_deg=fix.orientation_deg,
        ),
    )


async def detail(session: AsyncSession, task_id: uuid.UUID) -> SessionDetail:
    a = await repository.get(session, task_id)
    if a is None:
        raise SessionNotFound(f"no acquisition with task_id {task_id}")
    source = (
        None if a.known_source_id is None else await session.get(KnownSource, a.known_source_id)
    )
    fix = await repository.localization_of(session, task_id)
    return SessionDetail(
        **AcquisitionStatus.of(a).model_dump(),
        **ReviewFields.fields_of(a),
        description=a.description,
        known_source=None if source is None else KnownSourceOut.model_validate(source),
        measurements=[
            MeasurementOut.model_validate(m)
            for m in await repository.measurements_of(session, task_id)
        ],
        localization=None if fix is None else to_out(fix, with_surface=True),
    )
