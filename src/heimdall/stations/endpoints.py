from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from heimdall.core.db import get_db_session
from heimdall.stations import repository
from heimdall.stations.schemas import StationOut

router = APIRouter(prefix="/api/v1/acquisition", tags=["stations"])


@router.get("/stations", response_model=list[StationOut])
async def list_stations(session: AsyncSession = Depends(get_db_session)) -> list[StationOut]:
    return [StationOut.model_validate(s) for s in await repository.list_active(session)]
