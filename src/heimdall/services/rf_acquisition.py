"""rf-acquisition (port 8001): trigger, status, cancel, measurements, sessions, stations,
imports of recordings made elsewhere.

Its /metrics also carries the platform's state, read at scrape time: acquisitions
in progress, receivers' health, Celery queue depths.
"""

import asyncio

from heimdall.acquisition.endpoints import router as acquisition_router
from heimdall.acquisition.monitoring import acquisition_state_gauges
from heimdall.core import metrics
from heimdall.core.app import create_service_app
from heimdall.core.celery_app import queue_depths
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ
from heimdall.imports.endpoints import router as import_router
from heimdall.stations.endpoints import router as stations_router


async def read_queue_depths() -> metrics.GaugeSamples:
    depths = await asyncio.to_thread(queue_depths)
    return {metrics.CELERY_QUEUE_DEPTH: [((queue,), float(n)) for queue, n in depths.items()]}


app = create_service_app(
    "rf-acquisition",
    routers=[stations_router, acquisition_router, import_router],
    checks=[POSTGRES, RABBITMQ, OBJECT_STORE],
    description="Acquisition API: records every receiver of the network at once.",
    scrape_time=[
        acquisition_state_gauges(),
        metrics.ScrapeTimeGauges([metrics.CELERY_QUEUE_DEPTH], read_queue_depths),
    ],
)
