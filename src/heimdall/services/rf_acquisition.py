"""rf-acquisition (port 8001): trigger, status, cancel, measurements, sessions, stations."""

from heimdall.acquisition.endpoints import router as acquisition_router
from heimdall.core.app import create_service_app
from heimdall.core.health import OBJECT_STORE, POSTGRES, RABBITMQ, REDIS
from heimdall.stations.endpoints import router as stations_router

app = create_service_app(
    "rf-acquisition",
    routers=[stations_router, acquisition_router],
    checks=[POSTGRES, RABBITMQ, REDIS, OBJECT_STORE],
    description="Acquisition API: records every receiver of the network at once.",
)
