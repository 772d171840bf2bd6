"""inference (port 8003): localization of finished acquisitions."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from heimdall.core.app import create_service_app
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ
from heimdall.localization.endpoints import router as localization_router
from heimdall.localization.lag_process import lag_process, stop_lag_process


@asynccontextmanager
async def with_lag_process(app: FastAPI) -> AsyncIterator[None]:
    # POST /localize correlates in this process: its lag process starts with the service
    # (its imports take about a second), not during the first localization.
    await asyncio.to_thread(lag_process)
    try:
        yield
    finally:
        await asyncio.to_thread(stop_lag_process)


app = create_service_app(
    "inference",
    routers=[localization_router],
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Where is the transmitter, and how sure are we.",
    lifespan=with_lag_process,
)
