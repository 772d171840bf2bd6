"""rf-acquisition (port 8001): trigger, status, cancel, measurements, sessions, stations."""

import asyncio

from heimdall.acquisition.endpoints import router as acquisition_router
from heimdall.core import metrics
from heimdall.core.app import create_service_app
from heimdall.core.celery_app import ACQUISITION_QUEUE, queue_depth
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ
from heimdall.stations.endpoints import router as stations_router


async def refresh_queue_depth() -> None:
    metrics.celery_queue_depth.set(await asyncio.to_thread(queue_depth, ACQUISITION_QUEUE))


app = create_service_app(
    "rf-acquisition",
    routers=[stations_router, acquisition_router],
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Acquisition API: records every receiver of the network at once.",
    before_scrape=[refresh_queue_depth],
)
