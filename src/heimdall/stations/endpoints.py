from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.core.db import get_db_session
from heimdall.stations import repository, service
from heimdall.stations.schemas import StationOut, StationStateOut

router = APIRouter(prefix="/api/v1/acquisition", tags=["stations"])


@router.get("/stations", response_model=list[StationOut])
async def list_stations(session: AsyncSession = Depends(get_db_session)) -> list[StationOut]:
    return [StationOut.model_validate(s) for s in await repository.list_active(session)]


@router.get("/stations/state", response_model=list[StationStateOut])
async def station_states(session: AsyncSession = Depends(get_db_session)) -> list[StationStateOut]:
    """Each active receiver: idle, recording (with the acquisition) or failed (with the error)."""
    return await service.station_states(session)
